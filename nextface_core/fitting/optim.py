"""Optimiser helpers shared by the fit's stages and the video tracker.

- :func:`step_scale`: the typical change of a parameter per step, so that one learning
  rate suits parameters of very different units (radians, millimetres, pixels, SH);
- :func:`adam`: an Adam optimiser over named tensors with those scales;
- :func:`cosine_decay`: the learning-rate schedule of every Adam stage;
- :func:`run_adam`: the Adam loop with the schedule, NaN/Inf rollback
  (:class:`~nextface_core.reliability.StepGuard`) and progress reporting.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import torch

from ..reliability import StepGuard, finite
from .result import StageReport

log = logging.getLogger(__name__)

#: per-parameter step scales for Adam (a step moves a parameter by about lr × scale);
#: focal: a tenth of its current value (see :func:`step_scale`)
STEP_SCALES = {"translation": 10.0, "sh": 5.0}

Progress = Callable[[int, int, int, float], None]  # (stage, iteration, total, loss)


def step_scale(name: str, value: torch.Tensor) -> float:
    """Typical change of parameter ``name`` (currently ``value``) per unit learning rate."""
    if name == "focal":
        return float(value.detach().mean()) * 0.1
    return STEP_SCALES.get(name, 1.0)


def adam(tensors: dict[str, torch.Tensor], lr: float, scaled: bool = True) -> torch.optim.Adam:
    """Adam over named leaf tensors, one parameter group each (``lr × step_scale``)."""
    groups = [
        {"params": [t], "lr": lr * (step_scale(n, t) if scaled else 1.0), "name": n} for n, t in tensors.items()
    ]
    return torch.optim.Adam(groups)


def cosine_decay(iteration: int, iterations: int, final: float) -> float:
    """Factor of the base learning rate at ``iteration``: 1 → ``final`` along half a cosine."""
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * iteration / max(iterations - 1, 1)))


def run_adam(
    stage: int,
    iterations: int,
    final_rate: float,
    opt: torch.optim.Optimizer,
    loss_of: Callable[[int], tuple[torch.Tensor, dict[str, torch.Tensor]]],
    after_step: Callable[[], None] | None = None,
    progress: Progress | None = None,
) -> StageReport:
    """``iterations`` Adam steps of stage ``stage``; ``loss_of(it)`` returns the total loss and
    its weighted terms. A non-finite loss or gradient rolls the step back with a halved rate;
    ``after_step`` runs (without gradients) after every step, e.g. to project onto bounds."""
    history: list[float] = []
    parts: dict[str, torch.Tensor] = {}
    base = [g["lr"] for g in opt.param_groups]
    guard = StepGuard(opt, stage)
    t0 = time.perf_counter()
    for it in range(iterations):
        decay = cosine_decay(it, iterations, final_rate)
        for group, lr in zip(opt.param_groups, base):
            group["lr"] = lr * decay * guard.scale
        opt.zero_grad(set_to_none=True)
        loss, parts = loss_of(it)
        if torch.isfinite(loss):
            loss.backward()
        if not finite(loss, guard.params):
            log.warning("stage %d, iteration %d: NaN/Inf loss or gradient; step rolled back, learning rate halved", stage, it + 1)
            guard.rollback(it)
            continue
        guard.commit()
        opt.step()
        if after_step is not None:
            with torch.no_grad():
                after_step()
        history.append(float(loss.detach()))
        if progress is not None:
            progress(stage, it + 1, iterations, history[-1])
    return StageReport(stage, iterations, time.perf_counter() - t0, history, terms=parts)
