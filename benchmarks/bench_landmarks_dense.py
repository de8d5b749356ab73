"""Dense landmarks side by side: the fit with the model's sparse ibug68 landmarks against the
fit with all of MediaPipe's points on a calibration NextFace measured itself
(``nextface model calibrate-landmarks``), on the real Surrey face shape (sfm-as-bfm in the
Basel layouts, ``../shared/models/sfm-as-bfm``).

- **real photos**: the ibug-68-subset reprojection error (% inter-ocular distance) of the fit
  of scikit-image's astronaut and of its mirror image (the only real face photo the tests
  use; the mirror puts its asymmetries on the other side), after stage 1 and after stage 2
  (stage 3 changes only the maps, not the geometry), the latter with the default stage-2
  landmark weight (rising from ``[weights] landmarks_stage2`` to ``landmarks_stage2_final``
  over the stage), with that weight held at its start (``stage2_no_ramp``: the default
  before the ramp) and held at :data:`STRONG_STAGE2` throughout;
- **synthetic faces**: the stage-1 mean vertex error (mm, model space) on renders of random
  identities, expressions and poses of the model, textured with the mirrored astronaut
  (the calibration's texture is the unmirrored one), whose geometry is known.

Both fits see the same MediaPipe detections. The calibration is made once, in a temporary
cache. ``--quick``: 16 calibration renders, stage 1 only, two synthetic faces.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from nextface_core import calibration, dense_landmarks
from nextface_core.config import Config, load_config
from nextface_core.fitting import Fitter
from nextface_core.model import MorphableModel
from nextface_core.plugins import PluginRegistry

SFM = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "sfm-as-bfm"
#: a stage-2 landmark weight 10× the default start (0.05), held through the stage
STRONG_STAGE2 = 0.5


class Setup(NamedTuple):
    """The model, plugins and config of the comparison; ``texture [1,T,T,3]`` the calibration's
    (a NamedTuple: benchmarks are loaded from their file, outside ``sys.modules``)."""

    config: Config
    registry: PluginRegistry
    model: MorphableModel
    texture: torch.Tensor
    run: calibration.CalibrationRun
    seconds: float


def setup(folder: Path = SFM, views: int = 48, size: int = 320, seed: int = 0) -> Setup:
    """Load the model at ``folder`` and calibrate it into the current cache folder
    (``$NEXTFACE_CACHE_DIR``); 256-px fits, stage 1 only unless a caller widens ``fit.stages``."""
    config = load_config(overrides={
        "run.device": "cpu", "run.model": "basel", "model.path": str(folder), "run.max_resolution": 256,
        "light.bands": 3, "stage1.iterations": 600, "stage2.iterations": 100, "stage3.iterations": 100,
        "fit.stages": ["landmarks"],
    })
    registry = PluginRegistry()
    model = registry.create("model", "basel", config)
    start = time.perf_counter()
    texture = calibration.texture_from_photo(model, calibration.default_photo(), config, registry)
    detector = registry.create("detector", "mediapipe", config)
    try:
        run = calibration.calibrate(model, registry.create("renderer", "vertex", config), detector, texture,
                                    views=views, image_size=size, seed=seed)
    finally:
        detector.close()
    dense_landmarks.save_calibration(run.calibration, dense_landmarks.cache_path(model))
    return Setup(config, registry, model, texture, run, time.perf_counter() - start)


def photos() -> dict[str, np.ndarray]:
    """The real face photos: the astronaut and its mirror image."""
    astronaut = calibration.default_photo()
    return {"astronaut": astronaut, "astronaut_mirrored": np.ascontiguousarray(astronaut[:, ::-1])}


def photo_errors(s: Setup, dense: bool, stages: list[str], overrides: dict | None = None) -> dict[str, float]:
    """ibug-68-subset error (% IOD) of each photo's fit with ``stages`` (and config
    ``overrides``), dense or sparse."""
    config = s.config.with_overrides({"landmarks.dense": dense, "fit.stages": stages, **(overrides or {})})
    out = {}
    for name, image in photos().items():
        result = Fitter(config, registry=s.registry).fit([image], [name])
        expected = dense_landmarks.SCHEMA if dense else "ibug68"
        if result.schema != expected:
            raise RuntimeError(f"the {name} fit used {result.schema}, expected {expected}")
        out[name] = float(result.metrics()[0]["ibug68_error_iod_percent"])
    return out


def synthetic_faces(s: Setup, count: int, size: int = 256, seed: int = 1000):
    """``count`` renders ``[S,S,3]`` uint8 of known random faces of the model (textured with the
    mirrored astronaut) and their parameters."""
    mirrored = photos()["astronaut_mirrored"]
    texture = calibration.texture_from_photo(s.model, mirrored, s.config, s.registry)
    truth = calibration.calibration_views(s.model, size, count, seed=seed)
    images, _ = calibration.render_views(s.model, s.registry.create("renderer", "vertex", s.config), texture, truth, size)
    return images, truth


def vertex_errors(s: Setup, images: list[np.ndarray], truth, dense: bool) -> list[float]:
    """Stage-1 mean vertex error (mm, model space) of each synthetic face."""
    config = s.config.with_overrides({"landmarks.dense": dense, "fit.stages": ["landmarks"]})
    result = Fitter(config, registry=s.registry).fit(images, [f"face{i}" for i in range(len(images))])
    with torch.no_grad():
        error = (result.scene.vertices(result.params) - result.scene.vertices(truth)).norm(dim=-1).mean(1)
    return [float(e) for e in error]


def run(quick: bool = False) -> dict[str, object]:
    if not SFM.is_dir():
        raise FileNotFoundError(f"the real test model folder {SFM} is absent")
    with tempfile.TemporaryDirectory(prefix="nextface-dense-") as cache:
        previous = os.environ.get("NEXTFACE_CACHE_DIR")
        os.environ["NEXTFACE_CACHE_DIR"] = cache
        try:
            s = setup(views=16 if quick else 48)
            fits = {"stage1": (["landmarks"], {})}
            if not quick:
                start = s.config.weights.landmarks_stage2
                fits["stage2"] = (["landmarks", "photometric"], {})
                fits["stage2_no_ramp"] = (["landmarks", "photometric"], {"weights.landmarks_stage2_final": start})
                fits["stage2_strong"] = (["landmarks", "photometric"], {"weights.landmarks_stage2": STRONG_STAGE2,
                                                                        "weights.landmarks_stage2_final": STRONG_STAGE2})
            errors = {(fit, dense): photo_errors(s, dense, stages, overrides)
                      for fit, (stages, overrides) in fits.items() for dense in (False, True)}
            images, truth = synthetic_faces(s, 2 if quick else 12)
            v_sparse, v_dense = vertex_errors(s, images, truth, False), vertex_errors(s, images, truth, True)
        finally:
            if previous is None:
                os.environ.pop("NEXTFACE_CACHE_DIR", None)
            else:
                os.environ["NEXTFACE_CACHE_DIR"] = previous
    c = s.run.calibration
    figures: dict[str, object] = {
        "calibration_renders": s.run.renders,
        "calibration_faces_found": s.run.detected,
        "calibration_fixed_points": s.run.fixed,
        "calibration_contour_points": s.run.contour,
        "calibration_left_out": s.run.left_out,
        "calibration_spread_mm_median": round(float(c.spread_mm.median()), 3),
        "calibration_seconds": round(s.seconds, 1),
        "stage2_landmark_weight": f"{s.config.weights.landmarks_stage2} → {s.config.weights.landmarks_stage2_final}",
        "stage2_strong_landmark_weight": STRONG_STAGE2,
    }
    for fit in fits:
        sparse, dense = errors[(fit, False)], errors[(fit, True)]
        for name in sparse:
            figures[f"{name}_{fit}_ibug68_iod_percent"] = round(sparse[name], 3)
            figures[f"{name}_{fit}_mediapipe478_iod_percent"] = round(dense[name], 3)
            figures[f"{name}_{fit}_error_ratio"] = round(dense[name] / sparse[name], 3)
    figures["synthetic_faces"] = len(images)
    figures["synthetic_ibug68_vertex_error_mm"] = round(float(np.mean(v_sparse)), 3)
    figures["synthetic_mediapipe478_vertex_error_mm"] = round(float(np.mean(v_dense)), 3)
    figures["synthetic_vertex_error_reduction_percent"] = round(100.0 * (1.0 - np.mean(v_dense) / np.mean(v_sparse)), 1)
    return figures
