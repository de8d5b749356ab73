"""Benchmark ``model_basel``: cold and warm load of the full-size synthetic Basel model.

Writes the synthetic model at the real BFM sizes (28588 vertices, 56572 triangles, 199 shape /
100 expression / 145 albedo components; ``quick=True``: the small one) with
:func:`nextface_model_basel.testing.write_synthetic_basel`, then measures in the same run:

- ``raw_h5_read_s``: the baseline, reading every dataset the loader needs with h5py, nothing else;
- ``cold_load_s``: first load into an empty cache (read, check, UV, symmetry, write ``.npy``);
- ``warm_load_s``: best of 3 loads from the cache (target < 1 s; cold target < 15 s);
- UV quality (flipped triangles must be 0; area distortion), and the texture lookup build
  time and vertex→texture→vertex round-trip error per resolution.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

WARM_TARGET_S = 1.0
COLD_TARGET_S = 15.0


def _raw_read(folder: Path) -> float:
    import h5py

    start = time.perf_counter()
    for name, groups in (
        ("model2017-1_face12_nomouth.h5", ("shape", "expression")),
        ("albedoModel2020_face12_albedoPart.h5", ("diffuseAlbedo", "specularAlbedo")),
    ):
        with h5py.File(folder / name, "r") as h5:
            for g in groups:
                for d in ("model/mean", "model/pcaBasis", "model/pcaVariance", "representer/cells"):
                    h5[f"{g}/{d}"][()]
    return time.perf_counter() - start


def run(quick: bool = False) -> dict[str, object]:
    from nextface_model_basel.testing import write_synthetic_basel
    from nextface_core.texture import TextureMapper
    from nextface_model_basel import load_basel

    size = "small" if quick else "full"
    resolutions = (256,) if quick else (256, 512, 1024, 2048)
    previous = os.environ.get("NEXTFACE_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="bench-basel-") as tmp:
        folder = write_synthetic_basel(Path(tmp) / "model", size).folder
        os.environ["NEXTFACE_CACHE_DIR"] = str(Path(tmp) / "cache")
        try:
            raw = _raw_read(folder)
            start = time.perf_counter()
            model, info = load_basel(folder)
            cold = time.perf_counter() - start
            assert not info.cache_hit
            warm_times = []
            for _ in range(3):
                start = time.perf_counter()
                model, info = load_basel(folder)
                warm_times.append(time.perf_counter() - start)
                assert info.cache_hit
            warm = min(warm_times)
        finally:
            if previous is None:
                os.environ.pop("NEXTFACE_CACHE_DIR", None)
            else:
                os.environ["NEXTFACE_CACHE_DIR"] = previous
        uv = info.meta["uv"]
        result: dict[str, object] = {
            "size": size,
            "vertices": model.n_vertices,
            "triangles": model.n_faces,
            "components": f"{model.n_shape}/{model.n_expression}/{model.n_albedo}",
            "raw_h5_read_s": round(raw, 3),
            "cold_load_s": round(cold, 3),
            "warm_load_s": round(warm, 4),
            "cold_over_raw": round(cold / raw, 2),
            "warm_over_raw": round(warm / raw, 3),
            "cold_under_15s": cold < COLD_TARGET_S,
            "warm_under_1s": warm < WARM_TARGET_S,
            "uv_flipped": uv["flipped"],
            "uv_boundary_crossings": uv["boundary_crossings"],
            "uv_area_distortion": round(uv["area_distortion"], 4),
            "uv_area_ratio_p5_p95": f"{uv['area_ratio_p5']:.2f}/{uv['area_ratio_p95']:.2f}",
            "uv_l2_stretch": round(uv["l2_stretch"], 3),
            "uv_symmetry_error": uv["symmetry_error"],
        }
        values = torch.cat([model.shape_mean / 100.0, model.diffuse_mean], 1)[None]
        for t in resolutions:
            start = time.perf_counter()
            mapper = TextureMapper(model.uv, model.faces, t)
            build = time.perf_counter() - start
            start = time.perf_counter()
            back = mapper.to_vertices(mapper.to_texture(values))
            convert = time.perf_counter() - start
            err = (back - values).abs()
            result[f"texture_{t}_build_s"] = round(build, 3)
            result[f"texture_{t}_roundtrip_s"] = round(convert, 4)
            result[f"texture_{t}_roundtrip_err_mean"] = float(f"{err.mean().item():.3g}")
            result[f"texture_{t}_roundtrip_err_max"] = float(f"{err.max().item():.3g}")
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
