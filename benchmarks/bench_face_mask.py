"""The face-region mask (``[fit] face_mask``) side by side with the plain coverage mask, on
scikit-image's astronaut fitted with the real Surrey face shape (sfm-as-bfm in the Basel
layouts, ``../shared/models/sfm-as-bfm``), MediaPipe's 478 points on NextFace's own
calibration, 256 px, the default config otherwise (stages 1–3).

For ``face_mask`` off and on, at the default stage-2 landmark weight (``lm0.05``: 0.05
rising to ``landmarks_stage2_final`` over the stage) and at :data:`STRONG_STAGE2` held
through the stage (``lm0.5``): the sRGB PSNR over the covered pixels (``psnr_db``) and over the
covered pixels inside the face mask (``psnr_face_db``: the same region in every fit, the
skin the model can explain), and the ibug-68-subset landmark error (% inter-ocular
distance; stage 3 changes only the maps, so it is the stage-2 error). The calibration is
made once in a temporary cache (:mod:`bench_landmarks_dense`'s ``setup``).
``--quick``: 16 calibration renders, few iterations.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

#: the stage-2 landmark weight, held through the stage, compared with the default
STRONG_STAGE2 = 0.5
DENSE = Path(__file__).resolve().with_name("bench_landmarks_dense.py")


def _dense_bench():
    spec = importlib.util.spec_from_file_location("nextface_benchmark_landmarks_dense", DENSE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fit_figures(model_path: Path, image: np.ndarray, overrides: dict, out: Path | None = None) -> dict[str, float]:
    """Fit ``image`` with the default config plus ``overrides`` (sfm-as-bfm, 256 px, CPU) →
    its metrics; with ``out``, its outputs are saved there."""
    from nextface_core.config import load_config
    from nextface_core.fitting import Fitter
    from nextface_core.fitting.outputs import save_result

    config = load_config(overrides={"run.device": "cpu", "run.model": "basel", "model.path": str(model_path),
                                    "run.max_resolution": 256, **overrides})
    result = Fitter(config).fit([image], ["astronaut"])
    if result.schema != "mediapipe478":
        raise RuntimeError(f"the fit used {result.schema}, expected mediapipe478 (is the calibration in the cache?)")
    if out is not None:
        save_result(result, out, checkpoint=False)
    row = result.metrics()[0]
    return {k: round(float(row[k]), 3) for k in ("psnr_db", "psnr_face_db", "ibug68_error_iod_percent", "face_pixels")}


def run(quick: bool = False) -> dict[str, object]:
    dense = _dense_bench()
    if not dense.SFM.is_dir():
        raise FileNotFoundError(f"the real test model folder {dense.SFM} is absent")
    short = {"stage1.iterations": 50, "stage2.iterations": 5, "stage3.iterations": 2} if quick else {}
    weights = (0.05,) if quick else (0.05, STRONG_STAGE2)
    figures: dict[str, object] = {}
    from nextface_core.cache import empty_cache

    with empty_cache():
        dense.setup(views=16 if quick else 48)
        image = dense.photos()["astronaut"]
        for weight in weights:
            for masked in (False, True):
                held = {} if weight == 0.05 else {"weights.landmarks_stage2_final": weight}
                row = fit_figures(dense.SFM, image, {**short, "fit.face_mask": masked, "weights.landmarks_stage2": weight, **held})
                tag = f"{'mask' if masked else 'nomask'}_lm{weight:g}"
                figures.update({f"{tag}_{k}": v for k, v in row.items()})
    return figures
