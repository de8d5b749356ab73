"""Stage 1: pose, expression, shape and (optionally) focal from the landmarks alone.

Levenberg–Marquardt with an analytic Jacobian on the gathered landmark rows
(:mod:`nextface_core.fitting.landmark_solver`; the full mesh is never built): the landmark
term with the ``[stage1]`` priors, from the closed-form pose tilted by each of
``PITCH_STARTS`` (the lowest cost wins, per image). ``[stage1] iterations`` caps each start
(it stops once converged). The loss curve is the solver's objective; the final terms are
the ``[weights]`` terms evaluated at the solution.
"""

from __future__ import annotations

import logging
import time

import torch

from ...losses import LANDMARK_SMOOTHING
from ...params import SceneParameters
from ...reliability import NumericalFailure
from ..landmark_solver import PITCH_STARTS, LandmarkObjective, LandmarkSolver, Prior
from ..result import StageReport
from . import FitState

log = logging.getLogger(__name__)


class LandmarkStage:
    """Stage 1: pose, expression, shape and focal from the landmarks (Levenberg–Marquardt)."""

    name = "landmarks"
    loss_stage = 1

    def __init__(self, config: object = None) -> None:
        pass

    def run(self, state: FitState, params: SceneParameters) -> tuple[SceneParameters, StageReport]:
        cfg, s1 = state.config, state.config.stage1
        objective = _objective(state, params)
        total = s1.iterations * len(PITCH_STARTS)  # for the progress display

        def report(it: int, cost: float) -> None:
            if state.progress is not None:
                state.progress(self.loss_stage, it, total, cost)

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # ~100 landmark points: waking worker threads costs more than it saves
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                solution = LandmarkSolver(state.rows).solve(params, objective, s1.iterations, cfg.camera.optimize_focal,
                                                            report, pitch_starts=PITCH_STARTS)
                fitted = solution.params
                if not all(bool(torch.isfinite(t).all()) for t in fitted.tensors().values()):
                    raise NumericalFailure("stage 1 (Levenberg–Marquardt on the landmarks) ended with NaN/Inf parameters")
                _, parts = state.total(state.context(self.loss_stage, fitted))
        finally:
            torch.set_num_threads(threads)
        if state.progress is not None and solution.iterations < total:
            state.progress(self.loss_stage, total, total, solution.costs[-1])
        seconds = time.perf_counter() - t0
        return fitted.detached(), StageReport(self.loss_stage, solution.iterations, seconds, solution.costs[1:], terms=parts)


def _objective(state: FitState, params: SceneParameters) -> LandmarkObjective:
    """The landmark loss of the fit (its weight, confidences and robust form) with the
    ``[stage1]`` priors; other terms weighted in stage 1 are evaluated, not optimised."""
    cfg, s1 = state.config, state.config.stage1
    weights = {t.name: t.weight(cfg, 1) for t in state.losses}
    for name in sorted(set(weights) - {"landmarks", "shape_prior", "expression_prior"}):
        if weights[name] != 0.0:
            log.warning("stage 1 optimises the landmark term and its priors only; '%s' is evaluated, not optimised", name)
    priors = [Prior("shape", s1.shape_prior / params.shape.shape[0]),
              Prior("expression", s1.expression_prior / params.batch_size)]
    if cfg.camera.optimize_focal:
        priors.append(Prior("focal", s1.focal_prior / params.batch_size, params.focal[:, None], 1.0 / params.focal[:, None]))
    w = state.landmark_weights
    return LandmarkObjective(
        targets=state.landmark_targets,
        coefficients=weights.get("landmarks", 0.0) * w / w.sum().clamp_min(1e-8),  # the landmark loss's mean
        unit=100.0 / state.batch.longer_sides,  # % of the longer side
        principal_point=state.batch.principal_point,
        robust=LANDMARK_SMOOTHING,
        priors=priors,
    )
