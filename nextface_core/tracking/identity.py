"""The fixed identity of a track: shape and albedo coefficients, focal and a starting light.

It comes from a shared-identity fit of a few keyframes (:func:`fit_identity`) or from a
folder written by ``nextface fit`` (:meth:`Identity.load`). The focal length is kept as a
ratio to the image's longer side, so a fit made at one resolution serves a video at
another (the same camera is assumed).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import InputError
from ..landmarks import LandmarkSet
from ..model import MorphableModel
from ..params import SceneParameters


@dataclass
class Identity:
    """``shape [1,K_s]``, ``diffuse``/``specular [1,K_a]`` coefficients, ``focal_ratio``
    (focal / longer image side), ``sh [1,bands²,3]`` the light to start from, ``source``,
    ``specular_log_scale [1,1]`` (:class:`~nextface_core.params.SceneParameters`)."""

    shape: torch.Tensor
    diffuse: torch.Tensor
    specular: torch.Tensor
    focal_ratio: float
    sh: torch.Tensor
    source: str
    specular_log_scale: torch.Tensor | None = None
    expression_size: int = 0

    def __post_init__(self) -> None:
        if self.specular_log_scale is None:
            self.specular_log_scale = self.shape.new_zeros(1, 1)

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "Identity":
        move = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        return Identity(move(self.shape), move(self.diffuse), move(self.specular), self.focal_ratio, move(self.sh), self.source,
                        move(self.specular_log_scale), self.expression_size)

    def parameters(self, batch: int, sh: torch.Tensor) -> SceneParameters:
        """Neutral per-frame parameters (frontal, no expression) around this identity; ``focal``
        is a placeholder the tracker sets from ``focal_ratio``."""
        k_e = self.expression_size
        dev, dt = self.shape.device, self.shape.dtype
        return SceneParameters(
            shape=self.shape, expression=torch.zeros(batch, k_e, device=dev, dtype=dt),
            diffuse=self.diffuse, specular=self.specular, specular_log_scale=self.specular_log_scale,
            rotation=torch.zeros(batch, 3, device=dev, dtype=dt), translation=torch.zeros(batch, 3, device=dev, dtype=dt),
            focal=torch.ones(batch, device=dev, dtype=dt), sh=sh.expand(batch, -1, -1).clone(),
        )

    def check(self, model: MorphableModel) -> "Identity":
        """Raise :class:`InputError` unless the coefficient counts fit ``model``; set its sizes."""
        for name, want in (("shape", model.n_shape), ("diffuse", model.n_albedo), ("specular", model.n_albedo)):
            have = getattr(self, name).shape[-1]
            if have != want:
                raise InputError(
                    f"identity {self.source} has {have} {name} coefficients, model '{model.name}' has {want}",
                    "use a fit result made with the same model (and the same [model] *_components settings)",
                )
        self.expression_size = model.n_expression
        return self

    @classmethod
    def from_params(cls, params: SceneParameters, longer_sides: torch.Tensor, source: str) -> "Identity":
        """The identity of a shared-identity fit ``params`` (its first identity row), the focal
        ratio averaged over its images (``longer_sides [B]`` pixels), their mean light."""
        ratio = float((params.focal / longer_sides).mean())
        return cls(params.shape[:1].detach().clone(), params.diffuse[:1].detach().clone(),
                   params.specular[:1].detach().clone(), ratio, params.sh.mean(0, keepdim=True).detach().clone(), source,
                   params.specular_log_scale[:1].detach().clone())

    @classmethod
    def load(cls, path: str | Path) -> "Identity":
        """Read a ``nextface fit`` output: a per-image folder (``params.npz`` + ``params.json``)
        or the run's top folder (its first image folder is used). Never runs code."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"identity {path} does not exist", "pass a folder written by 'nextface fit'")
        candidates = [path] if (path / "params.npz").is_file() else sorted(p.parent for p in path.glob("*/params.npz"))
        folder = candidates[0] if candidates else None
        if folder is None:
            raise InputError(f"{path} holds no params.npz", "pass a folder written by 'nextface fit' (or one of its image folders)")
        fix = "re-run 'nextface fit' to write the result again"
        try:
            with np.load(folder / "params.npz", allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads((folder / "params.json").read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(f"identity {folder} lacks {Path(exc.filename).name}", fix) from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise InputError(f"identity {folder} is damaged: {exc}", fix) from None
        missing = [k for k in ("shape", "diffuse", "specular", "focal", "sh") if k not in arrays]
        if missing or "image_size" not in meta:
            raise InputError(f"identity {folder}/params.npz lacks {', '.join(missing) or 'image_size in params.json'}", fix)
        longer = float(max(meta["image_size"]))
        tensor = lambda k: torch.from_numpy(np.asarray(arrays[k], dtype=np.float32))[None]  # noqa: E731
        log_scale = tensor("specular_log_scale") if "specular_log_scale" in arrays else None  # absent from older results: the model's level
        return cls(tensor("shape"), tensor("diffuse"), tensor("specular"), float(arrays["focal"]) / longer,
                   tensor("sh"), str(folder), log_scale)


def keyframe_indices(found: Sequence[bool], count: int) -> list[int]:
    """``count`` frame indices spread evenly over the frames with a face (fewer if there are fewer)."""
    with_face = [i for i, f in enumerate(found) if f]
    if not with_face:
        return []
    count = min(count, len(with_face))
    picks = np.linspace(0, len(with_face) - 1, count).round().astype(int)
    return sorted({with_face[i] for i in picks})


def fit_identity(fitter, frames: Sequence[np.ndarray], landmarks: dict[str, LandmarkSet], names: Sequence[str]) -> Identity:
    """Shared-identity fit (stages 1 and 2) of keyframes ``frames`` with their landmarks."""
    result = fitter.fit(list(frames), list(names), landmarks=landmarks, shared_identity=len(frames) > 1, skip_stages=(3,))
    return Identity.from_params(result.params, result.batch.longer_sides, f"keyframes {', '.join(names)}")
