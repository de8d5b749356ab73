"""Benchmark ``dataset``: images per minute of ``fit-dataset`` on 1 and 2 Ray workers.

A synthetic dataset (96 px faces, exact landmarks in a file, the quick fit settings of
:mod:`nextface_core.synthetic.dataset`) is fitted twice into fresh folders, each run
starting its own local Ray runtime with as many CPUs as workers; each task uses
cores / workers torch threads, so the workers do not fight over the cores. Images per
minute count the whole run (runtime start and worker warm-up included), as a user sees it;
the scaling ratio is 2 workers over 1 worker in the same run of the benchmark.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path


def run(quick: bool = False) -> dict[str, object]:
    from nextface_core.config import load_config
    from nextface_core.dataset import fit_dataset, import_ray
    from nextface_core.synthetic.dataset import write_synthetic_dataset
    from nextface_model_basel.testing import write_synthetic_basel

    import_ray()
    count = 4 if quick else 12
    cores = multiprocessing.cpu_count()
    figures: dict[str, object] = {"images": count, "image_size_px": 96, "cores": cores}
    with tempfile.TemporaryDirectory(prefix="nextface-bench-dataset-") as tmp:
        folder = Path(tmp)
        old = os.environ.get("NEXTFACE_CACHE_DIR")
        os.environ["NEXTFACE_CACHE_DIR"] = str(folder / "cache")
        try:
            ds = write_synthetic_dataset(folder / "data", "basel", write_synthetic_basel, count=count, size=96)
            config = load_config(ds.config)
            for workers in (1, 2):
                report = fit_dataset(str(ds.images), str(folder / f"out{workers}"), config, workers=workers,
                                     threads=max(1, cores // workers))
                if report.done != count:
                    raise RuntimeError(f"{report.failed} images failed: {report.failures}")
                figures[f"images_per_minute_{workers}_workers"] = round(report.images_per_minute, 2)
                figures[f"wall_seconds_{workers}_workers"] = round(report.wall_seconds, 2)
                figures[f"torch_threads_{workers}_workers"] = max(1, cores // workers)
                figures[f"median_psnr_db_{workers}_workers"] = round(report.metrics["psnr_db"]["median"], 2)
        finally:
            if old is None:
                os.environ.pop("NEXTFACE_CACHE_DIR", None)
            else:
                os.environ["NEXTFACE_CACHE_DIR"] = old
    figures["scaling_2_over_1"] = round(float(figures["images_per_minute_2_workers"]) / float(figures["images_per_minute_1_workers"]), 3)
    return figures
