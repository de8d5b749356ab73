"""Benchmark ``fit_original_counts``: the fit at the original NextFace's iteration counts.

Stage 2: 400 iterations, stage 3: 100, stage 1 to convergence (L-BFGS stops by itself once it
converges; ``stage1.iterations`` is only its cap), on the full-size synthetic face of
``bench_fit`` (256 px). Baseline measured in the same run: the default fit (its quality is
the bar: landmark error, PSNR and geometry error must be as good or better).

Target: total ≤ 15 s with the default's quality or better. Figures of both fits as in
``bench_fit`` (``default_*`` for the baseline).
"""

from __future__ import annotations

from bench_fit import measure

TARGET_SECONDS = 15.0
ORIGINAL_COUNTS = {"stage2.iterations": 400, "stage3.iterations": 100}


def run(quick: bool = False) -> dict[str, object]:
    default = measure({}, quick)
    figures = measure({} if quick else ORIGINAL_COUNTS, quick)
    figures["target_s"] = TARGET_SECONDS
    figures["total_over_target"] = round(figures["total_s"] / TARGET_SECONDS, 2)
    for key in ("total_s", "landmark_error_px", "psnr_db", "geometry_error_mm", "rotation_error_deg", "load_average"):
        figures[f"default_{key}"] = default[key]
    figures["quality_not_worse_than_default"] = (
        figures["landmark_error_px"] <= default["landmark_error_px"] * 1.05
        and figures["psnr_db"] >= default["psnr_db"] - 0.1
        and figures["geometry_error_mm"] <= default["geometry_error_mm"] * 1.05
    )
    return figures
