"""Keeping a fit safe: checked output folders, NaN/Inf recovery in the Adam loops, and
SIGINT/SIGTERM turned into a resumable stop.

A run that cannot go on raises :class:`FitStopped`, which carries the last good
:class:`~nextface_core.fitting.result.Checkpoint`; the CLI saves it and names it.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import EXIT_INTERNAL, NextFaceError, UsageError
from .files import output_error

#: non-finite losses or gradients tolerated per stage before the run stops
MAX_NUMERIC_FAILURES = 5

#: exit codes of a run stopped by a signal (128 + the signal number, as shells report it)
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived during a fit (a BaseException, like KeyboardInterrupt, so
    no ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class NumericalFailure(Exception):
    """A stage kept producing a NaN/Inf loss or gradient after rolling back and halving
    its learning rate :data:`MAX_NUMERIC_FAILURES` times."""


class FitStopped(NextFaceError):
    """A fit stopped early (a signal, or repeated numerical failures); ``checkpoint`` holds
    the last completed stage, resumable with ``--resume`` / ``Fitter.fit(start=...)``."""

    def __init__(self, message: str, hint: str, checkpoint: Any, exit_code: int = EXIT_INTERNAL) -> None:
        super().__init__(message, hint)
        self.checkpoint = checkpoint
        self.exit_code = exit_code


def check_output_folder(path: str | Path) -> None:
    """Raise :class:`UsageError` unless ``path`` is, or can be created as, a folder, and an
    :class:`~nextface_core.errors.OutputError` (exit 74) when it cannot be written.

    Checked before a fit starts, so a bad ``--out`` costs nothing and creates nothing.
    """
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"cannot write to {path}: {probe} is a file, not a folder", "choose another --out folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        code = errno.EROFS if os.statvfs(probe).f_flag & os.ST_RDONLY else errno.EACCES
        raise output_error(path, OSError(code, f"{probe} is not writable: {os.strerror(code)}"))


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """While active, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread (so the
    fit can save a checkpoint); the previous handlers are restored on exit. Outside the main
    thread (where Python allows no handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def finite(loss: torch.Tensor, tensors: list[torch.Tensor]) -> bool:
    """True when ``loss`` and every gradient of ``tensors`` (those that have one) are finite."""
    checks = [torch.isfinite(loss).all()] + [torch.isfinite(t.grad).all() for t in tensors if t.grad is not None]
    return bool(torch.stack(checks).all())


class StepGuard:
    """Rolls an optimiser back to its last good state when a step goes non-finite.

    :meth:`commit` snapshots the parameters and optimiser state just before a step whose loss
    and gradients were finite; :meth:`rollback` restores that snapshot and halves the learning
    rate (:attr:`scale`, a factor the loop applies on top of its schedule). After
    :data:`MAX_NUMERIC_FAILURES` rollbacks it raises :class:`NumericalFailure`.
    """

    def __init__(self, opt: torch.optim.Optimizer, stage: int) -> None:
        self.opt, self.stage = opt, stage
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self.failures = 0
        self.scale = 1.0
        self._saved: tuple[list[torch.Tensor], dict] | None = None

    def commit(self) -> None:
        with torch.no_grad():
            values = [p.detach().clone() for p in self.params]
        self._saved = (values, copy.deepcopy(self.opt.state_dict()))

    def rollback(self, iteration: int) -> None:
        self.failures += 1
        if self.failures > MAX_NUMERIC_FAILURES:
            raise NumericalFailure(
                f"stage {self.stage} gave a NaN/Inf loss or gradient {self.failures} times (last at iteration {iteration + 1}),"
                f" even after halving its learning rate {MAX_NUMERIC_FAILURES} times"
            )
        self.scale *= 0.5
        if self._saved is not None:
            values, state = self._saved
            with torch.no_grad():
                for p, v in zip(self.params, values):
                    p.copy_(v)
            self.opt.load_state_dict(copy.deepcopy(state))
        self.opt.zero_grad(set_to_none=True)
