"""The fit's stages: what they share (:class:`FitState`) and what each one is (:class:`Stage`).

A stage takes the parameters left by the previous one and returns new parameters and a
:class:`~nextface_core.fitting.result.StageReport`. The fit runs the stages named by
``[fit] stages`` in the config, in order; each name is resolved through the plugin
registry (kind ``stage``), so a plugin can replace a stage or add one (a virtual-light
stage, say) without editing the fitter. The built-in stages of the method:

1. ``landmarks`` (:mod:`.landmarks`): pose, expression, shape and focal from landmarks;
2. ``photometric`` (:mod:`.photometric`): shape, expression, statistical albedo, pose and
   light from the photometric loss;
3. ``maps`` (:mod:`.maps`): per-texel diffuse, specular and roughness maps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import torch

from ...config import Config
from ...errors import UsageError
from ...losses import LossContext, LossTerm
from ...model import MorphableModel
from ...params import SceneParameters
from ...render import Renderer
from ..inputs import ImageBatch
from ..optim import Progress
from ..result import StageReport
from ..scene import FaceScene, LandmarkRows


@dataclass(frozen=True)
class Targets:
    """Detected landmarks of the chosen schema, in the fit's (resized) pixels:
    ``points [B,L,2]`` and confidences ``weights [B,L]``."""

    schema: str
    points: torch.Tensor
    weights: torch.Tensor

    def image(self, index: int) -> "Targets":
        """The targets of image ``index`` alone."""
        return Targets(self.schema, self.points[index : index + 1], self.weights[index : index + 1])


@dataclass(frozen=True)
class FitState:
    """What every stage of one fit reads: config, model, renderer, loss terms, the image
    batch, the landmark targets and the scene evaluator. Stages never change it."""

    config: Config
    model: MorphableModel
    renderer: Renderer
    losses: tuple[LossTerm, ...]
    batch: ImageBatch
    targets: Targets
    scene: FaceScene
    progress: Progress | None = None

    @property
    def rows(self) -> LandmarkRows:
        return self.scene.landmarks[self.targets.schema]

    @property
    def landmark_targets(self) -> torch.Tensor:
        """Detected points in the order of the model's landmark rows ``[B,L,2]``."""
        return self.targets.points[:, self.rows.landmark_index]

    @property
    def landmark_weights(self) -> torch.Tensor:
        """The detector's confidences times the association's per-landmark weights ``[B,L]``."""
        return self.targets.weights[:, self.rows.landmark_index] * self.rows.weights

    def image(self, index: int) -> "FitState":
        """The state of image ``index`` fitted alone: a stage whose images are independent
        (no shared identity) can run image by image and give each photo the fit it gets alone."""
        batch = self.batch.image(index)
        scene = FaceScene(self.model, batch.image_size, batch.principal_point, self.scene.texture.resolution,
                          self.scene.landmarks)
        return replace(self, batch=batch, targets=self.targets.image(index), scene=scene)

    @property
    def face_mask(self) -> torch.Tensor | None:
        """The face region ``[B,H,W,1]`` the photometric terms count, when ``[fit] face_mask`` is on."""
        return self.batch.face_mask if self.config.fit.face_mask else None

    def context(self, stage: int, params: SceneParameters, **kw: Any) -> LossContext:
        """The loss context of one iteration (projected landmarks evaluated here; the batch's
        face mask when ``[fit] face_mask`` is on)."""
        lms = self.scene.project_landmarks(params, self.targets.schema, self.targets.points)
        return LossContext(
            stage=stage,
            params=params,
            landmarks=lms,
            landmark_targets=self.landmark_targets,
            landmark_weights=self.landmark_weights,
            image_scale=self.batch.longer_sides,
            images=self.batch.images,
            valid=self.batch.valid,
            face_mask=self.face_mask,
            **kw,
        )

    def total(self, ctx: LossContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted sum of the terms active in ``ctx.stage``, and each weighted term (detached)."""
        total, parts = None, {}
        for term in self.losses:
            weight_at = getattr(term, "weight_at", None)  # third-party terms may have only weight()
            w = weight_at(self.config, ctx.stage, ctx.progress) if callable(weight_at) else term.weight(self.config, ctx.stage)
            if w == 0.0:
                continue
            value = w * term(ctx)
            parts[term.name] = value.detach()
            total = value if total is None else total + value
        if total is None:
            raise UsageError(f"every loss weight of stage {ctx.stage} is 0", "set at least one [weights] entry of that stage")
        return total, parts


@runtime_checkable
class Stage(Protocol):
    """One stage of the fit.

    ``loss_stage``: which stage's loss weights it uses (the ``stages`` of each loss term,
    ``[weights] landmarks_stage{n}``): 1 landmarks, 2 photometric, 3 maps.
    """

    name: str
    loss_stage: int

    def run(self, state: FitState, params: SceneParameters) -> tuple[SceneParameters, StageReport]:
        """Optimise from ``params`` (not modified) and return the new parameters and a report
        (the fitter sets its ``stage`` to the stage's position in the fit); raise
        :class:`~nextface_core.reliability.NumericalFailure` when the stage diverges."""
        ...
