"""The three-stage fit, speaking only to the contracts (any model, detector, renderer).

1. pose, expression, shape and (optionally) focal from landmarks, after a closed-form pose
   initialisation, evaluating only the landmark vertices;
2. shape, expression, statistical diffuse/specular albedo, pose and SH light from the
   photometric loss inside the coverage mask, plus landmark and prior terms;
3. per-texel diffuse, specular and roughness maps with symmetry, consistency and
   smoothness regularisers.

Every weight, learning rate and iteration count comes from the config; loss terms come
from the losses hook.
"""

from __future__ import annotations

import logging
import math
import resource
import signal
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..config import Config, resolve_device
from ..errors import InputError, UsageError
from ..reliability import EXIT_SIGINT, FitStopped, Interrupted, NumericalFailure, StepGuard, finite
from ..landmarks import LandmarkSet
from ..losses import LossContext, LossTerm
from ..model import MorphableModel
from ..params import SceneParameters
from ..plugins import PluginRegistry
from ..render import Renderer
from .inputs import ImageBatch, make_batch
from .pose import initial_pose
from .result import Checkpoint, FitResult, StageReport
from .scene import FaceScene, LandmarkRows, expand_identity

log = logging.getLogger(__name__)

#: per-parameter step scales for Adam (a step moves a parameter by about lr × scale)
STEP_SCALES = {"translation": 10.0, "sh": 5.0}  # focal: a tenth of its initial value

Progress = Callable[[int, int, int, float], None]  # (stage, iteration, total, loss)


@dataclass
class Targets:
    """Detected landmarks of the chosen schema, in the fit's (resized) pixels."""

    schema: str
    points: torch.Tensor  # [B,L,2]
    weights: torch.Tensor  # [B,L]


@dataclass
class Fitter:
    """Runs the fit for one config. Model, renderer and detector come from the registry
    unless passed in (the Python API accepts ready-made objects)."""

    config: Config
    registry: PluginRegistry | None = None
    model: MorphableModel | None = None
    renderer: Renderer | None = None
    losses: list[LossTerm] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.device = torch.device(resolve_device(self.config))
        if self.registry is None:
            self.registry = PluginRegistry()
        if self.model is None:
            self.model = self.registry.create("model", self.config.run.model, self.config)
        self.model = self.model.to(self.device)
        if self.renderer is None:
            self.renderer = self.registry.create("renderer", self.config.run.renderer, self.config)
        if not self.losses:
            self.losses = [self.registry.create("loss", n, self.config) for n in self.registry.names("loss")]

    # -- landmarks ----------------------------------------------------------------------

    def detect(self, images: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, LandmarkSet]:
        """Run the configured detector on the original photos."""
        detector = self.registry.create("detector", self.config.run.landmarks, self.config)
        return detector.detect(list(images), list(names))

    def _targets(self, detections: dict[str, LandmarkSet], batch: ImageBatch) -> Targets:
        usable = [s for s in detections if s in self.model.landmarks]
        if not usable:
            raise UsageError(
                f"the detector gives landmark schemas {sorted(detections)} but model '{self.model.name}' "
                f"has associations for {sorted(self.model.landmarks)}",
                "choose a detector whose schema the model supports (e.g. --landmarks mediapipe for ibug68)",
            )
        lms = detections[usable[0]]
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
        start: FitResult | None = None,
        skip_stages: Sequence[int] = (),
        progress: Progress | None = None,
    ) -> FitResult:
        """Fit ``images`` (``[H,W,3]`` uint8 sRGB arrays) and return the result.

        ``landmarks``: detections to use instead of running the detector (``{schema: set}``,
        in original-image pixels). ``start``: a checkpoint to resume from (its completed
        stages are not run again). ``skip_stages``: stage numbers not to run.

        A SIGINT/SIGTERM (:class:`~nextface_core.reliability.Interrupted`, or a
        KeyboardInterrupt) or a stage that keeps diverging raises
        :class:`~nextface_core.reliability.FitStopped` holding the checkpoint of the last
        completed stage.
        """
        cfg = self.config
        names = list(names) if names is not None else [f"image{i}" for i in range(len(images))]
        if len(images) == 0:
            raise InputError("no images to fit", "pass at least one image")
        if shared_identity and len(images) < 2:
            shared_identity = False
        torch.manual_seed(cfg.run.seed)
        detections = landmarks if landmarks is not None else self.detect(images, names)
        if cfg.run.skip_no_face:
            images, names, detections = _drop_faceless(images, names, detections)
        batch = make_batch(images, names, cfg.run.max_resolution, self.device, self.model.dtype)
        targets = self._targets(detections, batch)
        rows = LandmarkRows.gather(self.model, targets.schema, self.model.landmarks[targets.schema])
        scene = FaceScene(self.model, batch.image_size, batch.principal_point, cfg.texture.resolution, {targets.schema: rows})

        initial = self._initial_params(batch, targets, rows, shared_identity)
        if start is not None:
            _check_start(start, initial, batch.names, cfg.texture.resolution)
            params, maps, done = start.params.to(self.device), start.maps_to(self.device), start.completed_stage
            reports = [r for r in start.stages if r.stage <= done]
        else:
            params, maps, done, reports = initial, {}, 0, []
        state = _RunState(self, batch, targets, scene, progress)
        for stage in (1, 2, 3):
            if stage <= done:
                continue
            if stage in skip_stages:
                reports.append(StageReport(stage, 0, 0.0, [], skipped=True))
                continue
            run = {1: state.stage1, 2: state.stage2, 3: state.stage3}[stage]
            # the stages update parameters in place: keep the last completed stage's copy
            good = Checkpoint(params.detached(), {k: v.detach().clone() for k, v in maps.items()}, done, list(reports), batch.names)
            try:
                params, maps, report = run(params, maps)
            except (Interrupted, KeyboardInterrupt) as exc:
                signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
                raise FitStopped(
                    f"interrupted by {signal.Signals(signum).name} during stage {stage}",
                    "resume with --resume and the checkpoint of the last completed stage",
                    good,
                    exit_code=128 + signum if isinstance(exc, Interrupted) else EXIT_SIGINT,
                ) from None
            except NumericalFailure as exc:
                raise FitStopped(
                    str(exc), "lower that stage's learning_rate in the config and resume from the checkpoint", good
                ) from None
            reports.append(report)
            done = stage
        return state.result(params, maps, reports, done)

    def _initial_params(self, batch: ImageBatch, targets: Targets, rows: LandmarkRows, shared: bool) -> SceneParameters:
        cfg, m = self.config, self.model
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
        idx = rows.landmark_index
        pts = rows.mean[None].expand(params.batch_size, -1, -1)
        # contour rows: use their first candidate for the closed-form start
        n_fixed = rows.fixed_landmarks.shape[0]
        first = torch.arange(rows.contour_landmarks.shape[0], device=idx.device) * rows.contour_candidates.shape[1]
        pts = torch.cat([pts[:, :n_fixed], pts[:, n_fixed:][:, first]], dim=1)
        rotation, translation = initial_pose(
            pts, targets.points[:, idx], targets.weights[:, idx], params.focal, batch.principal_point
        )
        params.rotation, params.translation = rotation, translation
        return params


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
    for name, value in start.maps.items():
        if value.ndim != 4 or tuple(value.shape[1:3]) != (texels, texels) or not torch.isfinite(value).all():
            raise InputError(
                f"the checkpoint's {name} map has shape {tuple(value.shape)} or non-finite texels; this run needs "
                f"{texels}×{texels} texels",
                fix,
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


class _RunState:
    """What the stages of one fit share: inputs, scene, losses, timing and progress."""

    def __init__(self, fitter: Fitter, batch: ImageBatch, targets: Targets, scene: FaceScene, progress: Progress | None):
        self.fitter, self.cfg, self.batch, self.targets, self.scene = fitter, fitter.config, batch, targets, scene
        self.progress = progress
        self.rows = scene.landmarks[targets.schema]
        self.lm_targets = targets.points[:, self.rows.landmark_index]
        self.lm_weights = targets.weights[:, self.rows.landmark_index]

    # -- helpers ------------------------------------------------------------------------

    def _optimizer(self, params: SceneParameters, names: list[str], lr: float, extra: dict[str, torch.Tensor] | None = None):
        groups = []
        for name in names:
            t = getattr(params, name).detach().clone().requires_grad_(True)
            setattr(params, name, t)
            groups.append({"params": [t], "lr": lr * self._step_scale(name, t), "name": name})
        for name, t in (extra or {}).items():
            groups.append({"params": [t], "lr": lr, "name": name})
        return torch.optim.Adam(groups)

    @staticmethod
    def _step_scale(name: str, value: torch.Tensor) -> float:
        """Typical change of one parameter per step, so one learning rate suits them all."""
        if name == "focal":
            return float(value.detach().mean()) * 0.1
        return STEP_SCALES.get(name, 1.0)

    def _context(self, stage: int, params: SceneParameters, **kw: Any) -> LossContext:
        lms = self.scene.project_landmarks(params, self.targets.schema, self.targets.points)
        return LossContext(
            stage=stage,
            params=params,
            landmarks=lms,
            landmark_targets=self.lm_targets,
            landmark_weights=self.lm_weights,
            image_scale=self.batch.longer_sides,
            images=self.batch.images,
            valid=self.batch.valid,
            **kw,
        )

    def _total(self, stage: int, ctx: LossContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted sum of the active terms, and each weighted term (detached)."""
        total, parts = None, {}
        for term in self.fitter.losses:
            w = term.weight(self.cfg, stage)
            if w == 0.0:
                continue
            value = w * term(ctx)
            parts[term.name] = value.detach()
            total = value if total is None else total + value
        if total is None:
            raise UsageError(f"every loss weight of stage {stage} is 0", "set at least one [weights] entry of that stage")
        return total, parts

    def _loop(self, stage: int, iterations: int, opt: torch.optim.Optimizer, step: Callable[[int], LossContext], after=None):
        """Adam iterations of one stage; ``step(it)`` builds the loss context of iteration ``it``."""
        history: list[float] = []
        parts: dict[str, float] = {}
        final = getattr(self.cfg, f"stage{stage}").final_learning_rate
        base = [g["lr"] for g in opt.param_groups]
        guard = StepGuard(opt, stage)
        t0 = time.perf_counter()
        for it in range(iterations):
            decay = final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * it / max(iterations - 1, 1)))
            for group, lr in zip(opt.param_groups, base):
                group["lr"] = lr * decay * guard.scale
            opt.zero_grad(set_to_none=True)
            loss, parts = self._total(stage, step(it))
            if torch.isfinite(loss):
                loss.backward()
            if not finite(loss, guard.params):
                log.warning("stage %d, iteration %d: NaN/Inf loss or gradient; step rolled back, learning rate halved", stage, it + 1)
                guard.rollback(it)
                continue
            guard.commit()
            opt.step()
            if after is not None:
                with torch.no_grad():
                    after()
            history.append(float(loss.detach()))
            if self.progress is not None:
                self.progress(stage, it + 1, iterations, history[-1])
        seconds = time.perf_counter() - t0
        return StageReport(stage, iterations, seconds, history, terms=parts)

    def _roughness(self, params: SceneParameters) -> torch.Tensor:
        return self.scene.constant_roughness(params.shape.shape[0], self.cfg.texture.initial_roughness)

    # -- stages -------------------------------------------------------------------------

    def stage1(self, params: SceneParameters, maps: dict[str, torch.Tensor]):
        """Landmarks only: Levenberg–Marquardt with an analytic Jacobian on the gathered
        landmark rows (:mod:`.landmark_solver`): the landmark term with the ``[stage1]``
        priors, from the closed-form pose tilted by each of ``PITCH_STARTS`` (the lowest cost
        wins, per image); ``stage1.iterations`` caps each start (it stops once converged). The
        loss curve is the solver's objective; the final terms are the ``[weights]`` terms."""
        from ..losses import LANDMARK_SMOOTHING
        from .landmark_solver import PITCH_STARTS, LandmarkObjective, LandmarkSolver, Prior

        cfg = self.cfg
        weights = {t.name: t.weight(cfg, 1) for t in self.fitter.losses}
        for name in sorted(set(weights) - {"landmarks", "shape_prior", "expression_prior"}):
            if weights[name] != 0.0:
                log.warning("stage 1 optimises the landmark term and its priors only; '%s' is evaluated, not optimised", name)
        w, s1 = self.lm_weights, cfg.stage1
        priors = [Prior("shape", s1.shape_prior / params.shape.shape[0]),
                  Prior("expression", s1.expression_prior / params.batch_size)]
        if cfg.camera.optimize_focal:
            priors.append(Prior("focal", s1.focal_prior / params.batch_size, params.focal[:, None], 1.0 / params.focal[:, None]))
        objective = LandmarkObjective(
            targets=self.lm_targets,
            coefficients=weights.get("landmarks", 0.0) * w / w.sum().clamp_min(1e-8),  # the landmark loss's mean
            unit=100.0 / self.batch.longer_sides,  # % of the longer side
            principal_point=self.batch.principal_point,
            robust=LANDMARK_SMOOTHING,
            priors=priors,
        )
        total = cfg.stage1.iterations * len(PITCH_STARTS)  # for the progress display

        def report(it: int, cost: float) -> None:
            if self.progress is not None:
                self.progress(1, it, total, cost)

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # ~100 landmark points: waking worker threads costs more than it saves
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                solution = LandmarkSolver(self.rows).solve(params, objective, s1.iterations, cfg.camera.optimize_focal, report,
                                                           pitch_starts=PITCH_STARTS)
                params = solution.params
                if not all(bool(torch.isfinite(t).all()) for t in params.tensors().values()):
                    raise NumericalFailure("stage 1 (Levenberg–Marquardt on the landmarks) ended with NaN/Inf parameters")
                _, parts = self._total(1, self._context(1, params))
        finally:
            torch.set_num_threads(threads)
        if self.progress is not None and solution.iterations < total:
            self.progress(1, total, total, solution.costs[-1])
        stage = StageReport(1, solution.iterations, time.perf_counter() - t0, solution.costs[1:], terms=parts)
        return params.detached(), maps, stage

    def stage2(self, params: SceneParameters, maps: dict[str, torch.Tensor]):
        cfg = self.cfg
        with torch.no_grad():
            self._init_light(params)
        names = ["shape", "expression", "diffuse", "specular", "rotation", "translation", "sh"]
        names += ["focal"] if cfg.camera.optimize_focal else []
        opt = self._optimizer(params, names, cfg.stage2.learning_rate)
        roughness = self._roughness(params)

        def step(it: int) -> LossContext:
            diffuse, specular = self.scene.albedo_textures(params)
            # a new seed per iteration: a ray tracer's noise must not be the same every step
            inputs = self.scene.render_inputs(params, diffuse, specular, roughness, cfg.render.samples, cfg.run.seed + it)
            return self._context(2, params, render=self.fitter.renderer.render(inputs))

        report = self._loop(2, cfg.stage2.iterations, opt, step)
        return params.detached(), maps, report

    def stage3(self, params: SceneParameters, maps: dict[str, torch.Tensor]):
        cfg = self.cfg
        with torch.no_grad():
            diffuse, specular = self.scene.albedo_textures(params)
            initial = {"diffuse": diffuse, "specular": specular, "roughness": self._roughness(params)}
        maps = {k: v.detach().clone().requires_grad_(True) for k, v in initial.items()}
        opt = torch.optim.Adam([{"params": [t], "lr": cfg.stage3.learning_rate} for t in maps.values()])
        frozen = params.detached()
        with torch.no_grad():  # the geometry is fixed in stage 3: build it once
            base = self.scene.render_inputs(frozen, diffuse, specular, initial["roughness"], cfg.render.samples, cfg.run.seed)
            ctx = self._context(3, frozen, maps=maps, maps_initial=initial)

        def step(it: int) -> LossContext:
            inputs = replace(
                base, diffuse=maps["diffuse"], specular=maps["specular"], roughness=maps["roughness"], seed=cfg.run.seed + it
            )
            return replace(ctx, render=self.fitter.renderer.render(inputs))

        def clamp() -> None:
            for t in maps.values():
                t.clamp_(0.0, 1.0)

        report = self._loop(3, cfg.stage3.iterations, opt, step, after=clamp)
        return frozen, {k: v.detach() for k, v in maps.items()}, report

    def _init_light(self, params: SceneParameters) -> None:
        """Ambient light so the mean-albedo face matches the photo's mean brightness there."""
        lo = self.lm_targets.amin(1).floor().long().clamp_min(0)
        hi = self.lm_targets.amax(1).ceil().long()
        means = []
        for b in range(params.batch_size):  # once per image, not in a loop over iterations
            x0, y0 = lo[b].tolist()
            x1, y1 = hi[b].tolist()
            crop = self.batch.images[b, y0:y1, x0:x1]
            means.append(crop.reshape(-1, 3).mean(0) if crop.numel() else self.batch.images[b].reshape(-1, 3).mean(0))
        target = torch.stack(means)  # [B,3]
        albedo = self.fitter.model.diffuse_mean.mean(0).clamp_min(0.05)  # [3]
        params.sh.zero_()
        params.sh[:, 0, :] = target / albedo * 2.0 * math.sqrt(math.pi)

    # -- result -------------------------------------------------------------------------

    def result(self, params: SceneParameters, maps: dict[str, torch.Tensor], reports: list, done: int) -> FitResult:
        with torch.no_grad():
            lms = self.scene.project_landmarks(params, self.targets.schema, self.targets.points)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        if self.fitter.device.type == "cuda":
            peak = max(peak, torch.cuda.max_memory_allocated() / 2**20)
        return FitResult(
            config=self.cfg,
            model=self.fitter.model,
            renderer=self.fitter.renderer,
            scene=self.scene,
            batch=self.batch,
            params=params,
            maps=maps,
            stages=reports,
            completed_stage=done,
            schema=self.targets.schema,
            landmark_index=self.rows.landmark_index,
            landmarks=lms,
            landmark_targets=self.lm_targets,
            landmark_weights=self.lm_weights,
            detected=self.targets.points,
            peak_memory_mb=peak,
        )
