"""Dense-landmark tables: where each of a detector's points lies on a model's surface
(:class:`Calibration`), where they are stored, and how the fit picks them up.

A table is measured by :mod:`nextface_core.calibration` (``nextface model calibrate-landmarks``)
or shipped by a model plugin. It is kept as JSON in the cache (``landmarks/`` in
:func:`~nextface_core.cache.cache_root`) under :func:`model_key`, the SHA-256 of the model's
mean shape and triangles (the content its files give), or beside the model files
(:data:`FILE_NAME`); :func:`prepare_model` attaches it as ``landmarks["mediapipe478"]``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch

from .cache import cache_dir
from .errors import InputError, UsageError
from .model import LandmarkAssociation, MorphableModel

log = logging.getLogger(__name__)

#: the schema calibrated (the ``mediapipe`` detector's dense output)
SCHEMA = "mediapipe478"
#: bump when the stored table's meaning changes
FORMAT = 1
#: the table's name beside the model files
FILE_NAME = "nextface-landmarks-mediapipe478.json"


@dataclass(frozen=True)
class Calibration:
    """Where each landmark of ``schema`` lies on a model's surface.

    ``landmarks [L]`` schema indices of the fixed points, ``faces [L]`` their triangle and
    ``barycentric [L,3]`` their weights on its vertices, ``spread_mm [L]`` and ``weight [L]``
    (in (0, 1]); ``contour``: ``{schema index: candidate vertices}`` of the unstable points,
    ``contour_weight`` their weight. ``renders``: how many renders it was measured on;
    ``key``: :func:`model_key` of the model it belongs to.
    """

    schema: str
    key: str
    landmarks: torch.Tensor
    faces: torch.Tensor
    barycentric: torch.Tensor
    spread_mm: torch.Tensor
    weight: torch.Tensor
    contour: dict[int, torch.Tensor]
    contour_weight: float
    renders: int

    def association(self, model: MorphableModel) -> LandmarkAssociation:
        """The fit's view: surface points as weighted vertex triples, contour candidates, weights."""
        dev = model.device
        return LandmarkAssociation(
            self.landmarks.to(dev),
            model.faces[self.faces.to(dev)],
            {k: v.to(dev) for k, v in self.contour.items()},
            barycentric=self.barycentric.to(dev, model.dtype),
            weight=self.weight.to(dev, model.dtype),
            contour_weight=self.contour_weight,
        )

    def points(self, vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """The fixed surface points on ``vertices [B,N,3]`` (triangles ``faces [F,3]``) → ``[B,L,3]``."""
        corners = vertices[:, faces[self.faces]]  # [B,L,3,3]
        return (corners * self.barycentric.to(vertices.dtype)[None, :, :, None]).sum(2)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "schema": self.schema,
            "key": self.key,
            "renders": self.renders,
            "landmarks": self.landmarks.tolist(),
            "faces": self.faces.tolist(),
            "barycentric": self.barycentric.tolist(),
            "spread_mm": self.spread_mm.tolist(),
            "weight": self.weight.tolist(),
            "contour": {str(k): v.tolist() for k, v in self.contour.items()},
            "contour_weight": self.contour_weight,
        }

    @classmethod
    def from_json(cls, data: dict, source: str) -> "Calibration":
        """Read :meth:`to_json`'s content; a malformed table is an :class:`InputError` naming ``source``."""
        fix = "run nextface model calibrate-landmarks again to rewrite it"
        if data.get("format") != FORMAT:
            raise InputError(f"landmark calibration {source} has format {data.get('format')!r}, expected {FORMAT}", fix)
        try:
            calibration = cls(
                schema=str(data["schema"]),
                key=str(data["key"]),
                landmarks=torch.tensor(data["landmarks"], dtype=torch.long),
                faces=torch.tensor(data["faces"], dtype=torch.long),
                barycentric=torch.tensor(data["barycentric"], dtype=torch.float64),
                spread_mm=torch.tensor(data["spread_mm"], dtype=torch.float64),
                weight=torch.tensor(data["weight"], dtype=torch.float64),
                contour={int(k): torch.tensor(v, dtype=torch.long) for k, v in data["contour"].items()},
                contour_weight=float(data["contour_weight"]),
                renders=int(data["renders"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"landmark calibration {source} is malformed: {type(exc).__name__}: {exc}", fix) from None
        n = calibration.landmarks.shape[0]
        if calibration.faces.shape != (n,) or calibration.barycentric.shape != (n, 3) or calibration.weight.shape != (n,):
            raise InputError(f"landmark calibration {source} has arrays of inconsistent lengths", fix)
        return calibration


# -- where a calibration lives ----------------------------------------------------------


def model_key(model: MorphableModel) -> str:
    """SHA-256 of the model's mean shape and triangles (float64 / int64 bytes): the geometry
    its files give, independent of device, dtype and truncated bases."""
    digest = hashlib.sha256()
    digest.update(model.shape_mean.detach().to("cpu", torch.float64).numpy().round(4).tobytes())
    digest.update(model.faces.detach().to("cpu", torch.int64).numpy().tobytes())
    return digest.hexdigest()


def cache_path(model: MorphableModel) -> Path:
    """Where the calibration of ``model`` is kept in the cache."""
    return cache_dir("landmarks") / f"{SCHEMA}-{model_key(model)[:32]}.json"


def save_calibration(calibration: Calibration, path: Path) -> Path:
    """Write ``calibration`` as JSON to ``path`` (atomically) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(calibration.to_json()), encoding="utf-8")
    tmp.replace(path)
    return path


def find_calibration(model: MorphableModel, beside: Path | None = None) -> Calibration | None:
    """The stored calibration of ``model``: ``beside/`` :data:`FILE_NAME` (a model folder)
    when it exists and belongs to this model, else the cache's; None when neither exists."""
    key = model_key(model)
    for path in ([beside / FILE_NAME] if beside is not None else []) + [cache_path(model)]:
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(f"landmark calibration {path} cannot be read: {exc}", f"delete {path} and calibrate again") from None
            calibration = Calibration.from_json(data, str(path))
            if calibration.key == key:
                return calibration
    return None


def attach_calibration(model: MorphableModel, beside: Path | None = None) -> MorphableModel:
    """``model`` with ``landmarks["mediapipe478"]`` from its stored calibration; unchanged when
    the model already has that schema (a plugin shipping its own table) or none is stored."""
    if SCHEMA in model.landmarks:
        return model
    calibration = find_calibration(model, beside)
    if calibration is None:
        return model
    return replace(model, landmarks={**model.landmarks, SCHEMA: calibration.association(model)})


def model_folder(config) -> Path | None:
    """The config's ``model.path`` folder (where a calibration may lie beside the model files), or None."""
    return Path(config.model.path).expanduser() if config.model.path else None


def prepare_model(model: MorphableModel, config) -> MorphableModel:
    """The model the fit and the tracker use: with its stored dense calibration attached when
    ``[landmarks] dense`` is on (:func:`attach_calibration`), else as given."""
    return attach_calibration(model, model_folder(config)) if config.landmarks.dense else model


def choose_schema(schemas: Sequence[str], model: MorphableModel, dense: bool = True) -> str:
    """The first of the detector's ``schemas`` the model has an association for. When
    ``dense`` (``[landmarks] dense``) and the detector gives :data:`SCHEMA` but the model has
    no calibration for it, one warning line says so and how to make one; no usable schema is
    a :class:`UsageError`."""
    usable = [s for s in schemas if s in model.landmarks]
    if not usable:
        raise UsageError(
            f"the detector gives landmark schemas {sorted(schemas)} but model '{model.name}' "
            f"has associations for {sorted(model.landmarks)}",
            "choose a detector whose schema the model supports (e.g. --landmarks mediapipe for ibug68)",
        )
    if dense and SCHEMA in schemas and SCHEMA not in model.landmarks:
        log.warning("model '%s' has no %s calibration: fitting the %s landmarks instead "
                    "(nextface model calibrate-landmarks makes one)", model.name, SCHEMA, usable[0])
    return usable[0]
