"""``nextface demo``: a self-contained fit with known answers, needing no download.

A face is rendered from the built-in synthetic model (:mod:`nextface_core.testing`) with
known shape, expression, albedo, pose, focal and light; its landmarks are the projected
model landmarks. The fit recovers the scene, and the demo reports recovered-vs-true errors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .camera import axis_angle_to_matrix, model_to_camera, project
from .config import Config, load_config
from .fitting import Fitter, save_result
from .fitting.scene import FaceScene
from .landmarks import LandmarkSet
from .params import SceneParameters
from .plugins import PluginRegistry
from .render import RenderMode
from .sh import dominant_direction

#: the demo's fit settings when the user passes no config (a quicker fit than the defaults)
DEMO_OVERRIDES = {
    "run.device": "cpu",
    "stage1.iterations": 400,
    "stage2.iterations": 150,
    "stage3.iterations": 30,
}



def synthetic_scene(model, image_size: int = 256, seed: int = 0, bands: int = 3) -> SceneParameters:
    """Known parameters of a demo face: a random identity, a mild expression, a turned head,
    and light from the upper left on top of ambient light."""
    g = torch.Generator().manual_seed(seed)
    dt = model.dtype

    def randn(*shape: int, scale: float) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=dt) * scale).to(model.device)

    focal = torch.tensor([2.0 * image_size], dtype=dt, device=model.device)
    width = float(model.shape_mean[:, 0].max() - model.shape_mean[:, 0].min())
    params = SceneParameters.neutral(1, model.n_shape, model.n_expression, model.n_albedo, bands, focal,
                                     distance=float(focal) * width / (0.55 * image_size))
    params.shape = randn(1, model.n_shape, scale=0.7)
    params.expression = randn(1, model.n_expression, scale=0.5)
    params.diffuse = randn(1, model.n_albedo, scale=0.5)
    params.specular = randn(1, model.n_albedo, scale=0.3)
    params.rotation = torch.tensor([[math.radians(8.0), math.radians(-18.0), math.radians(4.0)]], dtype=dt, device=model.device)
    params.sh[:, 0] = 0.8 * 2.0 * math.sqrt(math.pi)
    if bands >= 2:  # light from the camera's upper left: direction (−0.5, −0.6, −0.6)
        direction = torch.nn.functional.normalize(torch.tensor([-0.5, -0.6, -0.6], dtype=dt), dim=0)
        k = 0.6 * 2.0 * math.sqrt(math.pi / 3.0)
        params.sh[:, 1:4] = torch.stack([direction[2], -direction[1], direction[0]]).to(model.device)[None, :, None] * k
    return params


def render_synthetic(model, params: SceneParameters, renderer, config: Config, image_size: int = 256):
    """The demo photo ``[H,W,3]`` uint8 and its ground-truth landmarks ``{schema: LandmarkSet}``."""
    from .fitting.outputs import to_uint8

    pp = torch.full((1, 2), image_size / 2.0, dtype=model.dtype, device=model.device)
    scene = FaceScene(model, (image_size, image_size), pp, config.texture.resolution)
    with torch.no_grad():
        diffuse, specular = scene.albedo_textures(params)
        rough = scene.constant_roughness(1, config.texture.initial_roughness)
        out = renderer.render(scene.render_inputs(params, diffuse, specular, rough, config.render.final_samples, 0, RenderMode.FULL))
        background = 0.05 + 0.1 * torch.linspace(0, 1, image_size, dtype=model.dtype, device=model.device)[None, :, None, None]
        image = out.image * out.mask + background.expand_as(out.image) * (1.0 - out.mask)
    sets = {}
    for schema, assoc in model.landmarks.items():
        verts = scene.vertices(params)[:, assoc.vertex_index]
        pix = project(model_to_camera(verts, params.rotation, params.translation), params.focal, pp)
        n = max([int(assoc.landmark_index.max()), *assoc.contour.keys()]) + 1
        points = torch.zeros(1, n, 2, dtype=model.dtype)
        conf = torch.zeros(1, n, dtype=model.dtype)
        points[:, assoc.landmark_index.cpu()] = pix.detach().cpu()
        conf[:, assoc.landmark_index.cpu()] = 1.0
        sets[schema] = LandmarkSet(schema, points, conf, torch.ones(1, dtype=torch.bool), ["demo"])
    return to_uint8(image[0]), sets


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
    """The user's config file, or the defaults with the demo's quicker settings."""
    return load_config(config_path) if config_path else load_config(overrides=DEMO_OVERRIDES)


def run_demo(out: str | Path | None, config_path: str | Path | None = None, size: str = "small",
             registry: PluginRegistry | None = None) -> dict[str, Any]:
    """Render, fit and compare; write the fit's outputs to ``out`` when given."""
    from .testing import synthetic_model

    config = demo_config(config_path)
    registry = registry or PluginRegistry()
    model = synthetic_model(size)
    renderer = registry.create("renderer", config.run.renderer, config)
    truth = synthetic_scene(model, bands=config.light.bands)
    image, landmarks = render_synthetic(model, truth, renderer, config)
    fitter = Fitter(config, registry=registry, model=model, renderer=renderer)
    result = fitter.fit([image], ["demo"], landmarks=landmarks)
    if out is not None:
        save_result(result, out)
    report = compare(result, model, truth)
    for stage in result.stages:
        report[f"stage {stage.stage} (s, iterations)"] = f"{stage.seconds:.1f}, {stage.iterations}"
    return report
