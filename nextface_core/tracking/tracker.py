"""Per-frame tracking of pose, expression and light with the identity fixed.

Each frame starts from the previous frame's parameters (warm start) and runs

1. a few damped Gauss-Newton steps on rotation, translation and expression from the
   landmarks (only the gathered landmark rows are evaluated), with temporal smoothness
   residuals towards the previous frame and an expression prior;
2. a short photometric refinement (Adam, its state kept across frames) of pose,
   expression and SH light through the renderer, with the landmark, smoothness and prior
   terms; only the face's box is rendered (the landmarks' box, widened).

The first frame, and the first after a gap longer than ``track.max_gap``, start from the
closed-form pose of :func:`nextface_core.fitting.pose.initial_pose` and take
``track.first_frame_iterations`` Gauss-Newton steps without smoothness terms.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from typing import Iterator

import torch

from ..config import Config
from ..errors import ConfigError
from ..losses import LossContext, landmark_loss, photometric_loss
from ..model import MorphableModel, blend, combine
from ..params import SceneParameters
from ..render import Renderer, RenderSettings, reset_renderer
from ..fitting.optim import STEP_SCALES
from ..fitting.landmark_solver import LandmarkObjective, LandmarkSolver, Prior
from ..fitting.pose import initial_pose
from ..fitting.scene import FaceScene, LandmarkRows
from .identity import Identity

_INT_RANGES = {
    "resolution": (64, 8192),
    "keyframes": (1, 1000),
    "landmark_iterations": (0, 1000),
    "first_frame_iterations": (1, 10000),
    "photometric_iterations": (0, 1000),
    "max_gap": (0, 1_000_000),
    "velocity": (0.0, 1.0),
    "threads": (0, 1024),
}


@dataclass(frozen=True)
class TrackSettings:
    """The ``[track]`` table of the config, range-checked (see ``default_config.toml``)."""

    resolution: int
    keyframes: int
    landmark_iterations: int
    first_frame_iterations: int
    photometric_iterations: int
    learning_rate: float
    max_gap: int
    smooth_rotation: float
    smooth_translation: float
    smooth_expression: float
    expression_prior: float
    photometric_landmarks: float
    photometric_regularisers: float
    velocity: float
    threads: int

    @classmethod
    def from_config(cls, config: Config) -> "TrackSettings":
        values = config.track.as_dict()
        for key, value in values.items():
            lo, hi = _INT_RANGES.get(key, (0.0, math.inf))
            if not lo <= value <= hi:
                span = f"between {lo} and {hi}" if hi != math.inf else f">= {lo}"
                raise ConfigError(f"track.{key} = {value!r} is out of range", f"it must be {span}")
        return cls(**values)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (0: leave the setting alone)."""
    before = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TrackScene(FaceScene):
    """A :class:`FaceScene` whose identity is fixed: the identity mesh and the albedo
    textures are computed once, so a frame only adds the expression blend."""

    def __init__(self, model: MorphableModel, identity: Identity, image_size: tuple[int, int],
                 principal_point: torch.Tensor, texture_resolution: int, schema: str) -> None:
        rows = LandmarkRows.gather(model, schema, model.landmarks[schema])
        super().__init__(model, image_size, principal_point, texture_resolution, {schema: rows})
        with torch.no_grad():
            self.identity_vertices = combine(model.shape_mean, model.shape_basis, model.shape_var, identity.shape)  # [1,N,3]
            self.expression_basis = model.expression_basis * model.expression_var.sqrt()[:, None, None]
            probe = identity.parameters(1, identity.sh)
            self.diffuse, self.specular = self.albedo_textures(probe)

    def vertices(self, params: SceneParameters) -> torch.Tensor:
        """Model-space vertices ``[B,N,3]``: the cached identity plus the expression."""
        return self.identity_vertices + blend(params.expression, self.expression_basis)


@dataclass
class FrameFit:
    """One tracked frame: ``params`` (batch of 1, detached), projected landmark rows
    ``landmarks [1,R,2]``, and the final landmark error in pixels."""

    params: SceneParameters
    landmarks: torch.Tensor
    landmark_error_px: float


class Tracker:
    """Tracks one face through consecutive frames of one size (``image_size`` (H, W)).

    Feed frames in order with :meth:`track`; call :meth:`lost` for a frame without a face.
    """

    def __init__(self, config: Config, model: MorphableModel, renderer: Renderer, identity: Identity,
                 image_size: tuple[int, int], schema: str) -> None:
        identity = identity.check(model)
        self.config, self.model, self.renderer, self.identity = config, model, renderer, identity
        reset_renderer(renderer)  # its caches (the vertex renderer's shadows) start afresh
        self.settings = TrackSettings.from_config(config)
        self.schema = schema
        dev, dt = model.device, model.dtype
        h, w = image_size
        self.longer = torch.tensor([float(max(h, w))], device=dev, dtype=dt)
        pp = torch.tensor([[w / 2.0, h / 2.0]], device=dev, dtype=dt)
        self.scene = TrackScene(model, identity, image_size, pp, config.texture.resolution, schema)
        self.rows = self.scene.landmarks[schema]
        t = self.scene.diffuse.shape[1]
        self.roughness = torch.full((1, t, t, 1), config.texture.initial_roughness, device=dev, dtype=dt)
        self.focal = identity.focal_ratio * self.longer
        rows = self.rows
        with torch.no_grad():
            self.solver = LandmarkSolver(rows, identity=combine(rows.mean, rows.shape_basis, rows.shape_var, identity.shape))
        self.previous: SceneParameters | None = None
        self.before: SceneParameters | None = None  # the frame before ``previous``, if tracked in a row
        self.gap = 0
        neutral = identity.parameters(1, identity.sh)
        self._vars = {n: getattr(neutral, n).clone().requires_grad_(True) for n in ("rotation", "translation", "expression", "sh")}
        lr = self.settings.learning_rate
        self._opt = torch.optim.Adam([{"params": [t], "lr": lr * (STEP_SCALES.get(n) or 1.0)} for n, t in self._vars.items()])

    # -- the landmark step --------------------------------------------------------------

    def _priors(self, smooth: bool) -> list[Prior]:
        """The expression prior and, with ``smooth``, the temporal terms (change from the
        prediction of :meth:`_prediction`; rotation in degrees)."""
        s = self.settings
        priors = [Prior("expression", s.expression_prior)]
        if smooth and self.previous is not None:
            goal = self._prediction()
            priors += [
                Prior("rotation", s.smooth_rotation, goal["rotation"], math.degrees(1.0)),
                Prior("translation", s.smooth_translation, goal["translation"]),
                Prior("expression", s.smooth_expression, goal["expression"]),
            ]
        return priors

    def _prediction(self) -> dict[str, torch.Tensor]:
        """Where the smoothness terms pull: the previous frame, moved on by ``track.velocity``
        times the change between the two frames before (when both were tracked in a row)."""
        prev, before, a = self.previous, self.before, self.settings.velocity
        names = ("rotation", "translation", "expression")
        if before is None or a == 0.0:
            return {n: getattr(prev, n) for n in names}
        return {n: getattr(prev, n) + a * (getattr(prev, n) - getattr(before, n)) for n in names}

    def _gauss_newton(self, params: SceneParameters, targets: torch.Tensor, weights: torch.Tensor,
                      iterations: int, smooth: bool) -> SceneParameters:
        """Levenberg–Marquardt steps on pose and expression from the landmarks (the fit's
        stage-1 solver with the identity fixed): squared errors in % of the longer side,
        confidence-weighted, plus :meth:`_priors`."""
        idx = self.rows.landmark_index
        objective = LandmarkObjective(
            targets=targets[:, idx], coefficients=(weights[:, idx] * self.rows.weights).clamp_min(0.0), unit=100.0 / self.longer,
            principal_point=self.scene.principal_point, priors=self._priors(smooth),
        )
        return self.solver.solve(params, objective, iterations).params

    # -- the photometric step -----------------------------------------------------------

    def _load(self, params: SceneParameters) -> dict[str, torch.Tensor]:
        """The refined leaf tensors (one Adam for the whole run), loaded with ``params``."""
        with torch.no_grad():
            for n, t in self._vars.items():
                t.copy_(getattr(params, n))
        return self._vars

    def _photometric(self, params: SceneParameters, image: torch.Tensor, valid: torch.Tensor,
                     targets: torch.Tensor, weights: torch.Tensor, smooth: bool) -> SceneParameters:
        s = self.settings
        p = replace(params, **self._load(params))
        idx = self.rows.landmark_index
        with torch.no_grad():
            (y0, y1, x0, x1) = self._face_box(self.scene.project_landmarks(params, self.schema, targets)[0])
        image, valid = image[:, y0:y1, x0:x1], valid[:, y0:y1, x0:x1]
        offset = self.scene.principal_point.new_tensor([[float(x0), float(y0)]])
        crop = RenderSettings((y1 - y0, x1 - x0), self.config.render.samples, self.config.run.seed)
        for _ in range(s.photometric_iterations):
            self._opt.zero_grad(set_to_none=True)
            inputs = self.scene.render_inputs(p, self.scene.diffuse, self.scene.specular, self.roughness)
            inputs = replace(inputs, principal_point=inputs.principal_point - offset)
            ctx = LossContext(
                stage=2, params=p, landmarks=self.scene.project_landmarks(p, self.schema, targets),
                landmark_targets=targets[:, idx], landmark_weights=weights[:, idx] * self.rows.weights,
                image_scale=self.longer, render=self.renderer.render(inputs, crop), images=image, valid=valid,
            )
            reg = sum(prior.cost(getattr(p, prior.block)).sum() for prior in self._priors(smooth))
            loss = photometric_loss(ctx) + s.photometric_landmarks * landmark_loss(ctx) + s.photometric_regularisers * reg
            loss.backward()
            self._opt.step()
        return p.detached()

    def _face_box(self, landmarks: torch.Tensor) -> tuple[int, int, int, int]:
        """Rows ``y0:y1`` and columns ``x0:x1`` of the image the refinement renders: the
        landmarks' box widened by a quarter of its size each side and half of it upwards
        (the forehead lies above the brows), within the image. ``landmarks [R,2]`` pixels."""
        lo, hi = landmarks.amin(0), landmarks.amax(0)
        span = (hi - lo).clamp_min(1.0)
        h, w = self.scene.image_size
        x0 = int(torch.floor(lo[0] - 0.25 * span[0]).clamp(0, w - 1))
        x1 = int(torch.ceil(hi[0] + 0.25 * span[0]).clamp(x0 + 1, w))
        y0 = int(torch.floor(lo[1] - 0.5 * span[1]).clamp(0, h - 1))
        y1 = int(torch.ceil(hi[1] + 0.25 * span[1]).clamp(y0 + 1, h))
        return y0, y1, x0, x1

    # -- frames -------------------------------------------------------------------------

    def _start(self, targets: torch.Tensor, weights: torch.Tensor) -> SceneParameters:
        """Closed-form pose from the landmarks, neutral expression, the identity's light."""
        params = self.identity.parameters(1, self.previous.sh if self.previous is not None else self.identity.sh)
        params.focal = self.focal.clone()
        idx = self.rows.landmark_index
        pts = self._identity_rows()
        params.rotation, params.translation = initial_pose(pts[None], targets[:, idx], weights[:, idx] * self.rows.weights, params.focal,
                                                           self.scene.principal_point)
        return params

    def _identity_rows(self) -> torch.Tensor:
        """The identity's landmark points (first contour candidate) in model space ``[Lf + C,3]``."""
        rows = self.rows
        n_fixed = rows.fixed_landmarks.shape[0]
        first = torch.arange(rows.contour_landmarks.shape[0], device=rows.mean.device) * rows.contour_candidates.shape[1]
        pts = combine(rows.mean, rows.shape_basis, rows.shape_var, self.identity.shape)[0]
        return torch.cat([pts[:n_fixed], pts[n_fixed:][first]], dim=0)

    def track(self, image: torch.Tensor, valid: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> FrameFit:
        """Track one frame: ``image [1,H,W,3]`` linear RGB, ``valid [1,H,W,1]``, landmarks of the
        schema ``targets [1,L,2]`` (pixels of this frame) with ``weights [1,L]``."""
        with torch_threads(self.settings.threads):
            return self._track(image, valid, targets, weights)

    def _track(self, image: torch.Tensor, valid: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> FrameFit:
        s = self.settings
        warm = self.previous is not None and self.gap <= s.max_gap
        with torch.no_grad():
            start = self.previous.detached() if warm else self._start(targets, weights)
        iterations = s.landmark_iterations if warm else s.first_frame_iterations
        with torch.no_grad():
            params = self._gauss_newton(start, targets, weights, iterations, smooth=warm)
        if s.photometric_iterations > 0:
            params = self._photometric(params, image, valid, targets, weights, smooth=warm)
        with torch.no_grad():
            lms = self.scene.project_landmarks(params, self.schema, targets)
            idx = self.rows.landmark_index
            w = (weights[:, idx] > 0).to(lms.dtype)
            err = float(((lms - targets[:, idx]).norm(dim=-1) * w).sum() / w.sum().clamp_min(1.0))
        self.before = self.previous if warm and self.gap == 0 else None
        self.previous, self.gap = params, 0
        return FrameFit(params, lms, err)

    def lost(self) -> None:
        """A frame without a face: the next frame warm-starts only if the gap stays short."""
        self.gap += 1
