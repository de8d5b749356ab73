"""Stage 2: shape, expression, statistical diffuse/specular albedo, pose and SH light from
the photometric loss inside the coverage mask, plus landmark and prior terms (Adam).

The specular albedo's overall level (``specular_log_scale``, see
:class:`~nextface_core.params.SceneParameters`) is free where ``[stage2] specular_scale`` says:
by default in a shared-identity fit of several views. Held at the model's level, the light takes
up the difference and stage 3 cannot undo it (reflectance benchmark, truth 0.79 × the synthetic
model's level, 3 views: the specular map came out 0.19 where the truth is 0.155). One view does
not pin the level down: the same photo, cropped, shrunk or turned, gave 0.75–2.26 ×.

The pose is optimised as the rotation and the camera-space position of the face's centre
(:func:`~nextface_core.fitting.pose.to_pivot`), not the translation of the model's origin."""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ...params import SceneParameters
from ..optim import adam, run_adam
from ..pose import from_pivot, pivot_point, to_pivot
from ..result import StageReport
from . import FitState


class PhotometricStage:
    """Stage 2: geometry, statistical albedo, pose and light from the photometric loss (Adam)."""

    name = "photometric"
    loss_stage = 2

    def run(self, state: FitState, params: SceneParameters) -> tuple[SceneParameters, StageReport]:
        cfg = state.config
        names = ["shape", "expression", "diffuse", "specular", "rotation", "translation", "sh"]
        names += ["specular_log_scale"] if free_specular_scale(cfg.stage2.specular_scale, params) else []
        names += ["focal"] if cfg.camera.optimize_focal else []
        start = replace(params, sh=initial_light(state, params))
        # the pose is optimised as (rotation, position of the face's centre): see to_pivot
        pivot = pivot_point(state.scene.vertices(start).detach())
        leaves = {n: getattr(start, n).detach().clone() for n in names}
        leaves["translation"] = to_pivot(leaves["rotation"], leaves["translation"], pivot)
        for t in leaves.values():
            t.requires_grad_(True)
        opt = adam(leaves, cfg.stage2.learning_rate)

        def current() -> SceneParameters:
            return replace(start, **{**leaves, "translation": from_pivot(leaves["rotation"], leaves["translation"], pivot)})
        roughness = state.scene.constant_roughness(params.shape.shape[0], cfg.texture.initial_roughness)

        def loss_of(it: int):
            params_now = current()
            diffuse, specular = state.scene.albedo_textures(params_now)
            # a new seed per iteration: a ray tracer's noise must not be the same every step
            inputs = state.scene.render_inputs(params_now, diffuse, specular, roughness)
            render = state.renderer.render(inputs, state.scene.render_settings(cfg.render.samples, cfg.run.seed + it))
            progress = it / max(cfg.stage2.iterations - 1, 1)
            return state.total(state.context(self.loss_stage, params_now, render=render, progress=progress))

        report = run_adam(self.loss_stage, cfg.stage2.iterations, cfg.stage2.final_learning_rate, opt, loss_of,
                          progress=state.progress)
        with torch.no_grad():
            return current().detached(), report


def free_specular_scale(mode: str, params: SceneParameters) -> bool:
    """Whether stage 2 optimises the specular level (``[stage2] specular_scale``)."""
    return mode == "free" or (mode == "views" and params.shared_identity)


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
