"""Benchmark ``synthetic_model``: writing the synthetic Basel files at the real BFM sizes.

:func:`nextface_model_basel.testing.write_synthetic_basel` builds the face mesh, QR-orthonormalises
the smooth random bases and writes the two HDF5 files plus the landmark files. Measured in
the same run:

- ``small_write_s``: the baseline, the small model (a few hundred vertices), median of 5;
- ``full_write_s``: the full size (28588 vertices, 56572 triangles, 199/100/199 + 145
  components; target < 30 s), and ``full_over_small``, the ratio;
- ``full_in_memory_s``: :func:`~nextface_core.synthetic.synthetic_model` at full size (the same
  model without HDF5), ``full_files_mb`` and the write rate.

``quick=True`` runs the small size only (a smoke run).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

FULL_TARGET_S = 30.0


def _write_seconds(size: str, folder: Path) -> float:
    from nextface_model_basel.testing import write_synthetic_basel

    start = time.perf_counter()
    write_synthetic_basel(folder, size)
    return time.perf_counter() - start


def run(quick: bool = False) -> dict[str, object]:
    from nextface_core.synthetic import synthetic_model

    with tempfile.TemporaryDirectory(prefix="bench-synthetic-") as tmp:
        small = statistics.median(_write_seconds("small", Path(tmp) / f"small{i}") for i in range(5))
        figures: dict[str, object] = {"small_write_s": round(small, 4)}
        if quick:
            return figures
        full = _write_seconds("full", Path(tmp) / "full")
        megabytes = sum(p.stat().st_size for p in (Path(tmp) / "full").iterdir()) / 2**20
    start = time.perf_counter()
    model = synthetic_model("full")
    in_memory = time.perf_counter() - start
    figures.update(
        {
            "vertices": model.n_vertices,
            "triangles": model.n_faces,
            "components": f"{model.n_shape}/{model.n_expression}/{model.n_albedo}",
            "full_write_s": round(full, 3),
            "full_over_small": round(full / small, 1),
            "full_under_30s": full < FULL_TARGET_S,
            "full_files_mb": round(megabytes, 1),
            "full_write_mb_per_s": round(megabytes / full, 1),
            "full_in_memory_s": round(in_memory, 3),
        }
    )
    return figures


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
