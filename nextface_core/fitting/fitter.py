"""The fit, speaking only to the contracts (any model, detector, renderer, stage).

:meth:`Fitter.fit` detects landmarks, builds the batch and the scene, then runs the stages
named by ``[fit] stages`` (:mod:`.stages`; by default the method's three: landmarks →
photometric → maps), keeping after each one a checkpoint to resume from. Every weight,
learning rate and iteration count comes from the config; loss terms and stages come from
the plugin registry.
"""

from __future__ import annotations

import logging
import resource
import signal
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from ..dense_landmarks import choose_schema, prepare_model
from ..config import Config, resolve_device
from ..errors import BackendUnavailableError, InputError
from ..landmarks import LandmarkSet
from ..losses import LossTerm
from ..model import MorphableModel
from ..params import SceneParameters
from ..plugins import PluginRegistry
from ..reliability import EXIT_SIGINT, FitStopped, Interrupted, NumericalFailure
from ..render import Renderer, reset_renderer
from .inputs import ImageBatch, face_masks, make_batch
from .optim import Progress
from .pose import initial_pose
from .result import Checkpoint, FitResult, StageReport
from .scene import FaceScene, LandmarkRows
from .stages import FitState, Stage, Targets

log = logging.getLogger(__name__)


@dataclass
class Fitter:
    """Runs the fit for one config. Model, renderer, loss terms and stages come from the
    registry unless passed in (the Python API accepts ready-made objects)."""

    config: Config
    registry: PluginRegistry | None = None
    model: MorphableModel | None = None
    renderer: Renderer | None = None
    losses: list[LossTerm] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.device = torch.device(resolve_device(self.config))
        if self.registry is None:
            self.registry = PluginRegistry()
        if self.model is None:
            self.model = self.registry.create("model", self.config.run.model, self.config)
        self.model = prepare_model(self.model, self.config).to(self.device)
        if self.renderer is None:
            self.renderer = self.registry.create("renderer", self.config.run.renderer, self.config)
        if not self.losses:
            self.losses = [self.registry.create("loss", n, self.config) for n in self.registry.names("loss")]
        if not self.stages:
            self.stages = [self.registry.create("stage", n, self.config) for n in self.config.fit.stages]

    # -- landmarks ----------------------------------------------------------------------

    def detect(self, images: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, LandmarkSet]:
        """Run the configured detector on the original photos."""
        detector = self.registry.create("detector", self.config.run.landmarks, self.config)
        return detector.detect(list(images), list(names))

    def _targets(self, detections: dict[str, LandmarkSet], batch: ImageBatch) -> Targets:
        lms = detections[choose_schema(list(detections), self.model, self.config.landmarks.dense)]
        missing = [batch.names[i] for i in (~lms.found).nonzero()[:, 0].tolist()]  # the caller's names
        if missing:
            raise InputError(
                f"no face found in {', '.join(missing)}",
                "remove the image, or set run.skip_no_face = true / --skip-no-face to skip it",
            )
        scale = torch.tensor(batch.scales, dtype=self.model.dtype, device=self.device)
        points = lms.points.to(self.device, self.model.dtype) * scale[:, None, None]
        return Targets(lms.schema, points, lms.confidence.to(self.device, self.model.dtype))

    # -- the fit ------------------------------------------------------------------------

    def fit(
        self,
        images: Sequence[np.ndarray],
        names: Sequence[str] | None = None,
        landmarks: dict[str, LandmarkSet] | None = None,
        shared_identity: bool = False,
        start: Checkpoint | None = None,
        skip_stages: Sequence[int] = (),
        progress: Progress | None = None,
    ) -> FitResult:
        """Fit ``images`` (``[H,W,3]`` uint8 sRGB arrays) and return the result.

        ``landmarks``: detections to use instead of running the detector (``{schema: set}``,
        in original-image pixels). ``start``: a checkpoint to resume from (its completed
        stages are not run again). ``skip_stages``: stage numbers not to run.

        A SIGINT/SIGTERM (:class:`~nextface_core.reliability.Interrupted`, or a
        KeyboardInterrupt), a stage that keeps diverging, or a backend failing mid-stage
        (:class:`~nextface_core.errors.BackendUnavailableError`, its exit code kept) raises
        :class:`~nextface_core.reliability.FitStopped` holding the checkpoint of the last
        completed stage.
        """
        cfg = self.config
        names = list(names) if names is not None else [f"image{i}" for i in range(len(images))]
        if len(images) == 0:
            raise InputError("no images to fit", "pass at least one image")
        torch.manual_seed(cfg.run.seed)
        reset_renderer(self.renderer)  # its caches (the vertex renderer's shadows) start afresh
        detections = landmarks if landmarks is not None else self.detect(images, names)
        if cfg.run.skip_no_face:
            images, names, detections = _drop_faceless(images, names, detections)
        state = self._state(images, names, detections, progress)
        params = self._initial_params(state, shared_identity and len(images) > 1)
        done, reports = 0, []
        if start is not None:
            _check_start(start, params, state.batch.names, cfg.texture.resolution)
            params, done = start.params.to(self.device), start.completed_stage
            reports = [r for r in start.stages if r.stage <= done]
        for number, stage in enumerate(self.stages, start=1):
            if number <= done:
                continue
            if number in skip_stages:
                reports.append(StageReport(number, 0, 0.0, [], skipped=True))
                continue
            good = Checkpoint(params, done, list(reports), state.batch.names)
            params, report = _run_stage(stage, number, state, params, good)
            reports.append(replace(report, stage=number))
            done = number
        return self._result(state, params, reports, done)

    def _state(self, images: Sequence[np.ndarray], names: list[str], detections: dict[str, LandmarkSet],
               progress: Progress | None) -> FitState:
        """The batch, landmark targets and scene of this fit."""
        cfg = self.config
        batch = make_batch(images, names, cfg.run.max_resolution, self.device, self.model.dtype)
        batch = replace(batch, face_mask=face_masks(batch, detections))  # reported always, in the loss with fit.face_mask
        targets = self._targets(detections, batch)
        rows = LandmarkRows.gather(self.model, targets.schema, self.model.landmarks[targets.schema])
        scene = FaceScene(self.model, batch.image_size, batch.principal_point, cfg.texture.resolution, {targets.schema: rows})
        return FitState(cfg, self.model, self.renderer, tuple(self.losses), batch, targets, scene, progress)

    def _initial_params(self, state: FitState, shared: bool) -> SceneParameters:
        """The mean face under ambient light, posed in closed form from the landmarks."""
        cfg, m, batch, rows = self.config, self.model, state.batch, state.rows
        longer = batch.longer_sides
        focal = torch.full_like(longer, cfg.camera.initial_focal) if cfg.camera.initial_focal > 0 else 2.0 * longer
        params = SceneParameters.neutral(
            batch_size=len(batch.names),
            n_shape=m.n_shape,
            n_expression=m.n_expression,
            n_albedo=m.n_albedo,
            bands=cfg.light.bands,
            focal=focal,
            distance=1.0,
            shared_identity=shared,
        )
        pts = rows.mean[None].expand(params.batch_size, -1, -1)
        # contour rows: use their first candidate for the closed-form start
        n_fixed = rows.fixed_landmarks.shape[0]
        first = torch.arange(rows.contour_landmarks.shape[0], device=pts.device) * rows.contour_candidates.shape[1]
        pts = torch.cat([pts[:, :n_fixed], pts[:, n_fixed:][:, first]], dim=1)
        rotation, translation = initial_pose(
            pts, state.landmark_targets, state.landmark_weights, params.focal, batch.principal_point
        )
        return replace(params, rotation=rotation, translation=translation)

    def _result(self, state: FitState, params: SceneParameters, reports: list[StageReport], done: int) -> FitResult:
        with torch.no_grad():
            lms = state.scene.project_landmarks(params, state.targets.schema, state.targets.points)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        if self.device.type == "cuda":
            peak = max(peak, torch.cuda.max_memory_allocated() / 2**20)
        return FitResult(
            config=self.config,
            model=self.model,
            renderer=self.renderer,
            scene=state.scene,
            batch=state.batch,
            params=params,
            stages=reports,
            completed_stage=done,
            schema=state.targets.schema,
            landmark_index=state.rows.landmark_index,
            landmarks=lms,
            landmark_targets=state.landmark_targets,
            landmark_weights=state.landmark_weights,
            detected=state.targets.points,
            peak_memory_mb=peak,
        )


def _run_stage(stage: Stage, number: int, state: FitState, params: SceneParameters,
               good: Checkpoint) -> tuple[SceneParameters, StageReport]:
    """Run one stage; an interruption, a divergence or a backend that stops mid-stage
    (:class:`~nextface_core.errors.BackendUnavailableError`, its exit code kept) becomes
    :class:`FitStopped` holding ``good``, the checkpoint of the last completed stage."""
    progress = state.progress
    if progress is not None:
        state = replace(state, progress=lambda _s, it, total, loss: progress(number, it, total, loss))
    try:
        return stage.run(state, params)
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        raise FitStopped(
            f"interrupted by {signal.Signals(signum).name} during stage {number}",
            "resume with --resume and the checkpoint of the last completed stage",
            good,
            exit_code=128 + signum if isinstance(exc, Interrupted) else EXIT_SIGINT,
        ) from None
    except NumericalFailure as exc:
        raise FitStopped(
            str(exc), "lower that stage's learning_rate in the config and resume from the checkpoint", good
        ) from None
    except BackendUnavailableError as exc:  # a backend that stopped mid-stage (e.g. a renderer's worker process died)
        raise FitStopped(f"stage {number} stopped: {exc.message}", exc.hint, good, exit_code=exc.exit_code) from None


def _check_start(start: Checkpoint, initial: SceneParameters, names: list[str], texels: int) -> None:
    """Refuse a checkpoint that does not fit this run (another batch, model or config) or
    holds non-finite values, before any stage runs on it."""
    fix = "resume with the images, model and config of the run that wrote the checkpoint"
    have = start.params
    if have.batch_size != initial.batch_size:
        raise InputError(
            f"the checkpoint holds {have.batch_size} images ({', '.join(start.names)}) but {initial.batch_size} "
            f"are being fitted ({', '.join(names)})",
            fix,
        )
    expected = initial.tensors()
    for name, value in have.tensors().items():
        want = expected.get(name)
        if want is not None and value.shape[1:] != want.shape[1:]:
            raise InputError(
                f"the checkpoint's {name} has shape {tuple(value.shape)}, this run needs {(value.shape[0], *want.shape[1:])}", fix
            )
        if not torch.isfinite(value).all():
            raise InputError(f"the checkpoint's {name} holds NaN or Inf values", "start the fit again without --resume")
    for name in ("diffuse_map", "specular_map", "roughness_map"):
        value = getattr(have, name)
        if value is not None and (value.ndim != 4 or tuple(value.shape[1:3]) != (texels, texels)):
            raise InputError(
                f"the checkpoint's {name} has shape {tuple(value.shape)}; this run needs {texels}×{texels} texels", fix
            )


def _drop_faceless(
    images: Sequence[np.ndarray], names: list[str], detections: dict[str, LandmarkSet]
) -> tuple[list[np.ndarray], list[str], dict[str, LandmarkSet]]:
    """Keep the images in which every schema found a face (``run.skip_no_face``)."""
    found = torch.stack([s.found for s in detections.values()]).all(0)
    keep = found.nonzero()[:, 0]
    if keep.numel() == 0:
        raise InputError(f"no face found in any of {len(names)} images", "check the images or the detector")
    for i in (~found).nonzero()[:, 0].tolist():
        log.warning("skipping %s: no face found", names[i])
    rows = keep.tolist()
    kept = {schema: s.select(rows) for schema, s in detections.items()}
    return [images[i] for i in rows], [names[i] for i in rows], kept
