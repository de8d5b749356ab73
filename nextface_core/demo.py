"""``nextface demo``: a self-contained fit with known answers, needing no download.

A face is rendered from the synthetic model (:mod:`nextface_core.synthetic`) with known
shape, expression, albedo, pose, focal and light; its landmarks are the projected model
landmarks. The fit recovers the scene, and the demo reports recovered-vs-true errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .camera import axis_angle_to_matrix
from .config import Config
from .config_sources import effective_config
from .fitting import Fitter, save_result
from .fitting.optim import Progress
from .params import SceneParameters
from .plugins import PluginRegistry
from .sh import dominant_direction
from .synthetic import render_synthetic, synthetic_model, synthetic_scene

#: the demo's fit settings when the user passes no config (a quicker fit than the defaults)
DEMO_OVERRIDES = {
    "run.device": "cpu",
    "stage1.iterations": 400,
    "stage2.iterations": 150,
    "stage3.iterations": 30,
}


def _rotation_error_degrees(a: torch.Tensor, b: torch.Tensor) -> float:
    r = axis_angle_to_matrix(a) @ axis_angle_to_matrix(b).transpose(-1, -2)
    cos = ((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    return float(torch.rad2deg(torch.acos(cos)).max())


def compare(result, model, truth: SceneParameters) -> dict[str, Any]:
    """Recovered-vs-true errors of a fit of a synthetic image."""
    fitted = result.params
    scene = result.scene
    with torch.no_grad():
        geometry = (scene.vertices(fitted) - scene.vertices(truth.detached())).norm(dim=-1).mean()
    metrics = result.metrics()[0]
    report = {
        "rotation error (deg)": round(_rotation_error_degrees(fitted.rotation, truth.rotation), 3),
        "translation error (mm)": round(float((fitted.translation - truth.translation).norm(dim=-1).max()), 3),
        "focal error (%)": round(float(((fitted.focal - truth.focal).abs() / truth.focal).max() * 100.0), 3),
        "mean geometry error (mm)": round(float(geometry), 3),
        "landmark error (px)": round(metrics["landmark_error_px"], 3),
        "masked PSNR (dB)": round(metrics["psnr_db"], 2) if metrics["psnr_db"] is not None else None,
    }
    if truth.sh.shape[1] >= 4 and fitted.sh.shape[1] >= 4:
        cos = (dominant_direction(fitted.sh) * dominant_direction(truth.sh)).sum(-1).clamp(-1, 1)
        report["light direction error (deg)"] = round(float(torch.rad2deg(torch.acos(cos)).max()), 2)
    return report


def demo_config(config_path: str | Path | None = None) -> Config:
    """The config file a command finds (``--config``, ``$NEXTFACE_CONFIG``, the user config
    folder), else the defaults with the demo's quicker settings; then ``NEXTFACE_*`` variables."""
    return effective_config(config_path, fallback=DEMO_OVERRIDES)


def run_demo(out: str | Path | None, config_path: str | Path | None = None, size: str = "small",
             registry: PluginRegistry | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Render, fit and compare (``progress`` as in :meth:`Fitter.fit`); write the fit's
    outputs to ``out`` when given."""
    config = demo_config(config_path)
    registry = registry or PluginRegistry()
    model = synthetic_model(size)
    renderer = registry.create("renderer", config.run.renderer, config)
    truth = synthetic_scene(model, bands=config.light.bands)
    image, landmarks = render_synthetic(model, truth, renderer, config)
    fitter = Fitter(config, registry=registry, model=model, renderer=renderer)
    result = fitter.fit([image], ["demo"], landmarks=landmarks, progress=progress)
    if out is not None:
        save_result(result, out)
    report = compare(result, model, truth)
    for stage in result.stages:
        report[f"stage {stage.stage} (s, iterations)"] = f"{stage.seconds:.1f}, {stage.iterations}"
    return report
