"""Stage 1: pose, expression, shape and (optionally) focal from the landmarks alone.

Only the gathered landmark rows of the model are evaluated (never the full mesh). A small
smooth least-squares problem, so L-BFGS with a strong-Wolfe line search rather than Adam: it
converges in a few hundred evaluations where Adam needs thousands. ``[stage1] iterations``
caps the L-BFGS iterations (its line search evaluates the loss at most 1.25 × as often).

L-BFGS shares one line search and one curvature history across everything it optimises,
so images that do not share an identity are solved one at a time: a photo gets the same
stage 1 in a batch (a folder's chunk) as alone.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from ...params import SceneParameters
from ...reliability import NumericalFailure
from ..optim import step_scale
from ..result import StageReport
from . import FitState


class LandmarkStage:
    """Stage 1: pose, expression, shape and focal from the landmarks (L-BFGS)."""

    name = "landmarks"
    loss_stage = 1

    def run(self, state: FitState, params: SceneParameters) -> tuple[SceneParameters, StageReport]:
        if params.batch_size == 1 or params.shared_identity:
            return self._solve(state, params)
        solved = [self._solve(state.image(i), params.image(i)) for i in range(params.batch_size)]
        reports = [r for _, r in solved]
        steps = max(len(r.losses) for r in reports)
        # the batch's loss after each evaluation: the images' mean, each held at its last value once it stopped
        losses = [sum(r.losses[min(k, len(r.losses) - 1)] for r in reports) / len(reports) for k in range(steps)]
        terms = {k: sum(r.terms.get(k, 0.0) for r in reports) / len(reports) for k in reports[0].terms}
        report = StageReport(self.loss_stage, sum(r.iterations for r in reports), sum(r.seconds for r in reports),
                             losses, terms=terms)
        return SceneParameters.cat([p for p, _ in solved]), report

    def _solve(self, state: FitState, params: SceneParameters) -> tuple[SceneParameters, StageReport]:
        """One L-BFGS solve of all of ``params`` (one image, or a shared identity)."""
        cfg = state.config
        iterations = cfg.stage1.iterations
        # shape too (on the landmark rows only): with the mean shape alone, pose absorbs the
        # identity's proportions (≈ 7° of pitch on the synthetic test faces)
        names = ["rotation", "translation", "expression", "shape"] + (["focal"] if cfg.camera.optimize_focal else [])
        scales = {n: step_scale(n, getattr(params, n)) for n in names}
        raw = {n: (getattr(params, n).detach() / scales[n]).requires_grad_(True) for n in names}
        opt = torch.optim.LBFGS(
            list(raw.values()), lr=1.0, max_iter=iterations, history_size=20,
            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12,
        )
        history: list[float] = []
        parts: dict[str, torch.Tensor] = {}

        def current() -> SceneParameters:
            return replace(params, **{n: raw[n] * scales[n] for n in names})

        def closure() -> torch.Tensor:
            nonlocal parts
            opt.zero_grad(set_to_none=True)
            loss, parts = state.total(state.context(self.loss_stage, current()))
            loss.backward()
            history.append(float(loss.detach()))
            if state.progress is not None:  # L-BFGS's line search may evaluate up to 1.25 × max_iter times
                state.progress(self.loss_stage, min(len(history), iterations), iterations, history[-1])
            return loss

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # ~100 landmark points: waking worker threads costs more than it saves
        t0 = time.perf_counter()
        try:
            if iterations > 0:
                opt.step(closure)
        finally:
            torch.set_num_threads(threads)
        with torch.no_grad():
            fitted = current().detached()
        if not all(bool(torch.isfinite(getattr(fitted, n)).all()) for n in names):
            raise NumericalFailure("stage 1 (L-BFGS on the landmarks) ended with NaN/Inf parameters")
        if state.progress is not None and history:
            state.progress(self.loss_stage, iterations, iterations, history[-1])
        return fitted, StageReport(self.loss_stage, len(history), time.perf_counter() - t0, history, terms=parts)
