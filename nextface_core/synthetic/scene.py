"""Known scenes of the synthetic face and their renders: the ground truth of the demo, the
plugin kit, the synthetic dataset and the synthetic video clips."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..camera import model_to_camera, project
from ..config import Config
from ..fitting.scene import FaceScene
from ..landmarks import LandmarkSet
from ..model import MorphableModel
from ..params import SceneParameters
from ..render import Renderer, RenderOutput, composite


def synthetic_scene(model: MorphableModel, image_size: int = 256, seed: int = 0, bands: int = 3) -> SceneParameters:
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


def render_synthetic(
    model: MorphableModel, params: SceneParameters, renderer: Renderer, config: Config, image_size: int = 256
) -> tuple[np.ndarray, dict[str, LandmarkSet]]:
    """The demo photo ``[H,W,3]`` uint8 and its ground-truth landmarks ``{schema: LandmarkSet}``."""
    from ..fitting.outputs import to_uint8

    pp = torch.full((1, 2), image_size / 2.0, dtype=model.dtype, device=model.device)
    scene = FaceScene(model, (image_size, image_size), pp, config.texture.resolution)
    with torch.no_grad():
        diffuse, specular = scene.albedo_textures(params)
        rough = scene.constant_roughness(1, config.texture.initial_roughness)
        out = renderer.render(scene.render_inputs(params, diffuse, specular, rough), scene.render_settings(config.render.final_samples))
        image = on_background(out)
    return to_uint8(image[0]), projected_landmarks(model, params, image_size, ["demo"])


def on_background(out: RenderOutput) -> torch.Tensor:
    """The render ``[B,H,W,3]`` over a dark vertical gradient (a photo has no black void)."""
    h = out.image.shape[1]
    background = 0.05 + 0.1 * torch.linspace(0, 1, h, dtype=out.image.dtype, device=out.image.device)[None, :, None, None]
    return composite(out, background.expand_as(out.image))


def projected_landmarks(model: MorphableModel, params: SceneParameters, image_size: int,
                        names: list[str]) -> dict[str, LandmarkSet]:
    """The exact landmarks ``{schema: LandmarkSet}`` of ``params``'s B images (square
    ``image_size``, centred principal point), as a perfect detector would give them."""
    b = params.batch_size
    pp = torch.full((b, 2), image_size / 2.0, dtype=model.dtype, device=model.device)
    scene = FaceScene(model, (image_size, image_size), pp, 8)
    sets = {}
    with torch.no_grad():
        vertices = scene.vertices(params)
        for schema, assoc in model.landmarks.items():
            pix = project(model_to_camera(assoc.points(vertices), params.rotation, params.translation), params.focal, pp)
            n = max([int(assoc.landmark_index.max()), *assoc.contour.keys()]) + 1
            points = torch.zeros(b, n, 2, dtype=model.dtype)
            conf = torch.zeros(b, n, dtype=model.dtype)
            points[:, assoc.landmark_index.cpu()] = pix.cpu()
            conf[:, assoc.landmark_index.cpu()] = 1.0
            sets[schema] = LandmarkSet(schema, points, conf, torch.ones(b, dtype=torch.bool), list(names))
    return sets
