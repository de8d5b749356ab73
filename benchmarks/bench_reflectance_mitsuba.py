"""Benchmark ``reflectance_mitsuba``: the ``reflectance`` benchmark's single-view 256 px case
fitted by the Mitsuba renderer (CPU LLVM) instead of the vertex renderer, with the same
truth, figures and targets (Mitsuba should reach the vertex renderer's figures within
1 dB / 20 %), plus the fit's wall time against the 5-minute target. Minutes on 2 cores.
``quick``: the small model at 128 px with short stages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

TARGET_SECONDS = 300.0


def run(quick: bool = False) -> dict[str, object]:
    from nextface_core.config import load_config
    from nextface_core.plugins import PluginRegistry
    from nextface_core.synthetic import synthetic_model
    from nextface_core.synthetic.reflectance import reflectance_truth, render_truth

    spec = importlib.util.spec_from_file_location("bench_reflectance", Path(__file__).with_name("bench_reflectance.py"))
    assert spec is not None and spec.loader is not None
    base = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base)
    overrides = {"run.device": "cpu"}
    if quick:
        overrides.update({"stage1.iterations": 100, "stage2.iterations": 10, "stage3.iterations": 10})
    config = load_config(overrides=overrides)
    registry = PluginRegistry()
    mitsuba = registry.create("renderer", "mitsuba", config)
    model = synthetic_model("small" if quick else "full")
    truth = reflectance_truth(model, texels=config.texture.resolution, image_size=128 if quick else 256)
    images, _ = render_truth(truth, mitsuba, samples=base.TRUTH_SAMPLES)
    figures: dict[str, object] = {"samples": config.render.samples}
    figures.update(base.fit_case(truth, mitsuba, mitsuba, registry, config, images))
    figures["fit_under_5min"] = float(figures["fit_s"]) <= TARGET_SECONDS
    return figures
