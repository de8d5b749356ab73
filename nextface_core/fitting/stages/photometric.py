"""Stage 2: shape, expression, statistical diffuse/specular albedo, pose and SH light from
the photometric loss inside the coverage mask, plus landmark and prior terms (Adam)."""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ...params import SceneParameters
from ..optim import adam, run_adam
from ..result import StageReport
from . import FitState


class PhotometricStage:
    """Stage 2: geometry, statistical albedo, pose and light from the photometric loss (Adam)."""

    name = "photometric"
    loss_stage = 2

    def run(self, state: FitState, params: SceneParameters) -> tuple[SceneParameters, StageReport]:
        cfg = state.config
        names = ["shape", "expression", "diffuse", "specular", "rotation", "translation", "sh"]
        names += ["focal"] if cfg.camera.optimize_focal else []
        start = replace(params, sh=initial_light(state, params))
        leaves = {n: getattr(start, n).detach().clone().requires_grad_(True) for n in names}
        current = replace(start, **leaves)
        opt = adam(leaves, cfg.stage2.learning_rate)
        roughness = state.scene.constant_roughness(params.shape.shape[0], cfg.texture.initial_roughness)

        def loss_of(it: int):
            diffuse, specular = state.scene.albedo_textures(current)
            # a new seed per iteration: a ray tracer's noise must not be the same every step
            inputs = state.scene.render_inputs(current, diffuse, specular, roughness)
            render = state.renderer.render(inputs, state.scene.render_settings(cfg.render.samples, cfg.run.seed + it))
            return state.total(state.context(self.loss_stage, current, render=render))

        report = run_adam(self.loss_stage, cfg.stage2.iterations, cfg.stage2.final_learning_rate, opt, loss_of,
                          progress=state.progress)
        return current.detached(), report


def initial_light(state: FitState, params: SceneParameters) -> torch.Tensor:
    """Ambient light ``[B,bands²,3]`` under which the mean-albedo face matches the photo's
    mean brightness inside the landmarks' bounding box."""
    targets = state.landmark_targets
    lo = targets.amin(1).floor().long().clamp_min(0)
    hi = targets.amax(1).ceil().long()
    means = []
    for b in range(params.batch_size):  # once per image, not in a loop over iterations
        x0, y0 = lo[b].tolist()
        x1, y1 = hi[b].tolist()
        crop = state.batch.images[b, y0:y1, x0:x1]
        means.append(crop.reshape(-1, 3).mean(0) if crop.numel() else state.batch.images[b].reshape(-1, 3).mean(0))
    target = torch.stack(means)  # [B,3]
    albedo = state.model.diffuse_mean.mean(0).clamp_min(0.05)  # [3]
    sh = torch.zeros_like(params.sh)
    sh[:, 0, :] = target / albedo * 2.0 * math.sqrt(math.pi)
    return sh
