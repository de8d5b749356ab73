"""What a fit returns: parameters, maps, per-stage reports, metrics, and checkpoints.

A :class:`FitResult` lives in memory (the Python API never touches the disk unless asked);
:func:`nextface_core.fitting.outputs.save_result` writes it out. :class:`Checkpoint` is the
resumable part, saved as ``.npz`` (arrays only, loaded with ``allow_pickle=False``) + JSON.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..version import __version__
from ..color import linear_to_srgb
from ..errors import InputError
from ..files import atomic_path
from ..landmark_schemas import eye_corners, view
from ..mapstats import MAP_STATISTICS, map_statistics, visible_texels
from ..params import SceneParameters
from ..config import Config
from ..model import MorphableModel
from ..render import Renderer, RenderMode, RenderOutput, composite
from .inputs import ImageBatch
from .scene import FaceScene

CHECKPOINT_FORMAT = "nextface-checkpoint-1"

#: the keys of one image's row of :meth:`FitResult.metrics` (its ``params.json`` holds them too)
METRIC_KEYS = ("landmark_error_px", "landmark_error_iod_percent", "ibug68_error_px", "ibug68_error_iod_percent",
               "psnr_db", "psnr_face_db", "coverage_pixels", "face_pixels", *MAP_STATISTICS)

#: which pixels each PSNR of the metrics counts (written into ``summary.json``)
METRIC_REGIONS = {
    "psnr_db": "sRGB PSNR over the pixels the rendered face covers",
    "psnr_face_db": "sRGB PSNR over the covered pixels inside the face mask (mask.png: all but the eyes, the "
                    "open mouth and non-skin such as hair inside the face oval), whether or not the fit's loss used it",
}


@dataclass
class StageReport:
    """Iterations, wall seconds and the loss after each iteration of one stage."""

    stage: int
    iterations: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    skipped: bool = False
    terms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.terms = {k: float(v) for k, v in self.terms.items()}

    @property
    def iterations_per_second(self) -> float:
        return self.iterations / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Checkpoint:
    """Everything needed to resume a fit after ``completed_stage``."""

    params: SceneParameters
    completed_stage: int
    stages: list[StageReport]
    names: list[str]

    def save(self, path: str | Path) -> None:
        """Atomically write the checkpoint as one ``.npz`` holding arrays and a JSON header."""
        arrays = {f"param_{k}": v.detach().cpu().numpy() for k, v in self.params.tensors().items()}
        meta = {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "completed_stage": self.completed_stage,
            "names": self.names,
            "stages": [asdict(s) for s in self.stages],
        }
        arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with atomic_path(path) as tmp:
            with tmp.open("wb") as f:
                np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "Checkpoint":
        """Read a checkpoint; never executes code (no pickle). Bad files raise InputError."""
        path = Path(path)
        fix = "pass a checkpoint written by this version of NextFace, or start the fit again"
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise InputError(f"checkpoint {path} does not exist", "check the path given to --resume") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise InputError(f"checkpoint {path} is truncated or not a NextFace checkpoint ({exc})", fix) from None
        try:
            meta = json.loads(arrays.pop("meta_json").tobytes().decode())
        except (KeyError, ValueError, UnicodeDecodeError):
            raise InputError(f"checkpoint {path} has no readable header", fix) from None
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise InputError(f"checkpoint {path} has format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}", fix)
        tensors = {k[6:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("param_")}
        try:
            params = SceneParameters(**tensors)
        except (TypeError, ValueError) as exc:
            raise InputError(f"checkpoint {path} has inconsistent parameters: {exc}", fix) from None
        stages = [StageReport(**s) for s in meta["stages"]]
        return cls(params, int(meta["completed_stage"]), stages, list(meta["names"]))


@dataclass
class FitResult:
    """The outcome of :meth:`Fitter.fit`, with the objects needed to render and save it.

    ``landmarks``/``landmark_targets [B,L,2]`` projected/detected points (rows in the order
    of ``landmark_index [L]``, schema indices), ``landmark_weights [B,L]``, ``detected
    [B,L_schema,2]`` every detected point; ``params`` holds the stage-3 maps once that stage ran.
    """

    config: Config
    model: MorphableModel
    renderer: Renderer
    scene: FaceScene
    batch: ImageBatch
    params: SceneParameters
    stages: list[StageReport]
    completed_stage: int
    schema: str
    landmark_index: torch.Tensor
    landmarks: torch.Tensor
    landmark_targets: torch.Tensor
    landmark_weights: torch.Tensor
    detected: torch.Tensor
    peak_memory_mb: float

    @property
    def names(self) -> list[str]:
        return self.batch.names

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.params, self.completed_stage, self.stages, self.names)

    def textures(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Diffuse ``[S,T,T,3]``, specular ``[S,T,T,3]`` and roughness ``[S,T,T,1]`` maps:
        the stage-3 maps when stage 3 ran, else the statistical albedos baked to textures."""
        p = self.params
        if p.diffuse_map is not None and p.specular_map is not None and p.roughness_map is not None:
            return p.diffuse_map, p.specular_map, p.roughness_map
        with torch.no_grad():
            diffuse, specular = self.scene.albedo_textures(p)
        return diffuse, specular, self.scene.constant_roughness(diffuse.shape[0], self.config.texture.initial_roughness)

    def vertices(self) -> torch.Tensor:
        """Model-space vertices with identity and expression ``[B,N,3]``."""
        with torch.no_grad():
            return self.scene.vertices(self.params)

    def render(self, mode: RenderMode = RenderMode.FULL, textures: tuple | None = None) -> RenderOutput:
        """Re-render the batch with the final sample count."""
        diffuse, specular, rough = textures or self.textures()
        with torch.no_grad():
            inputs = self.scene.render_inputs(self.params, diffuse, specular, rough)
            settings = self.scene.render_settings(self.config.render.final_samples, self.config.run.seed, mode)
            return self.renderer.render(inputs, settings)

    def metrics(self, render: RenderOutput | None = None) -> list[dict[str, float | None]]:
        """Per image: mean landmark error (px and % inter-ocular distance), the sRGB PSNR over
        the pixels the rendered face covers (``psnr_db``) and over those inside the face mask
        too (``psnr_face_db``, :data:`METRIC_REGIONS`), and the statistics of its identity's maps on the visible texels
        (:func:`~nextface_core.mapstats.map_statistics`)."""
        render = render or self.render()
        diffuse, specular, _ = self.textures()
        maps = map_statistics(diffuse, specular, visible_texels(self.scene, self.params))
        dist = (self.landmarks - self.landmark_targets).norm(dim=-1)
        w = (self.landmark_weights > 0).to(dist.dtype)
        err_px = (dist * w).sum(1) / w.sum(1).clamp_min(1.0)
        iod = self._interocular()
        ibug_px = self._ibug68_error()
        mask = render.mask * self.batch.valid
        psnr, psnr_face = self._psnr(render, mask), self._psnr(render, mask * self.batch.face_mask)
        out = []
        for b in range(self.params.batch_size):
            out.append(
                {
                    "landmark_error_px": float(err_px[b]),
                    "landmark_error_iod_percent": float(100.0 * err_px[b] / iod[b]) if iod is not None else None,
                    "ibug68_error_px": float(ibug_px[b]) if ibug_px is not None else None,
                    "ibug68_error_iod_percent": (
                        float(100.0 * ibug_px[b] / iod[b]) if ibug_px is not None and iod is not None else None
                    ),
                    "psnr_db": psnr[b],
                    "psnr_face_db": psnr_face[b],
                    "coverage_pixels": float(mask[b].sum()),
                    "face_pixels": float((mask[b] * self.batch.face_mask[b]).sum()),
                    **maps[b if len(maps) > 1 else 0],
                }
            )
        return out

    def _psnr(self, render: RenderOutput, mask: torch.Tensor) -> list[float | None]:
        """Per image, the sRGB PSNR (dB) of the render in front of the photo against the photo
        over ``mask [B,H,W,1]`` (None where the mask is empty)."""
        shown = composite(render, self.batch.images)
        se = ((linear_to_srgb(shown) - linear_to_srgb(self.batch.images)) ** 2 * mask).sum((1, 2, 3))
        area = mask.sum((1, 2, 3))
        mse = se / (3.0 * area.clamp_min(1e-8))
        return [10.0 * math.log10(1.0 / max(float(e), 1e-12)) if float(a) > 0 else None for e, a in zip(mse, area)]

    def _ibug68_error(self) -> torch.Tensor | None:
        """Mean error ``[B]`` (px) over the ibug-68 points, comparable between schemas: the fit's
        own error for an ibug68 fit; for a schema with an ibug68 view (mediapipe478), that view
        of the projected and the detected points, over the ibug points whose every source
        point is a fitted row. None when the schema has no ibug68 view."""
        if self.schema == "ibug68":
            rows, detected, valid = self.landmarks, self.landmark_targets, self.landmark_weights > 0
        else:
            table = view(self.schema, "ibug68")
            if table is None:
                return None
            b, n = self.detected.shape[:2]
            projected = self.landmarks.new_zeros(b, n, 2)
            fitted = torch.zeros(b, n, dtype=torch.bool, device=self.landmarks.device)
            projected[:, self.landmark_index] = self.landmarks
            fitted[:, self.landmark_index] = self.landmark_weights > 0
            index = torch.tensor(table, dtype=torch.long, device=self.landmarks.device)  # [68, k]
            rows, detected = projected[:, index].mean(2), self.detected[:, index].mean(2)
            valid = fitted[:, index].all(2)
        w = valid.to(rows.dtype)
        return ((rows - detected).norm(dim=-1) * w).sum(1) / w.sum(1).clamp_min(1.0)

    def _interocular(self) -> torch.Tensor | None:
        corners = eye_corners(self.schema)
        if corners is None:
            return None
        return (self.detected[:, corners[0]] - self.detected[:, corners[1]]).norm(dim=-1).clamp_min(1e-6)

    def summary(self, metrics: list[dict] | None = None) -> dict[str, Any]:
        """The content of ``summary.json``."""
        metrics = metrics or self.metrics()
        return {
            "version": __version__,
            "schema": self.schema,
            "shared_identity": self.params.shared_identity,
            "completed_stage": self.completed_stage,
            "face_mask_in_loss": bool(self.config.fit.face_mask),
            "psnr_regions": METRIC_REGIONS,
            "peak_memory_mb": self.peak_memory_mb,
            "stages": [
                {
                    "stage": s.stage,
                    "iterations": s.iterations,
                    "seconds": s.seconds,
                    "iterations_per_second": s.iterations_per_second,
                    "final_loss": s.losses[-1] if s.losses else None,
                    "final_terms": s.terms,
                    "skipped": s.skipped,
                }
                for s in self.stages
            ],
            "images": [{"name": n, **m} for n, m in zip(self.names, metrics)],
        }
