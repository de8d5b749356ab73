"""Progress on stderr, so stdout stays the command's result: a rich bar in a terminal,
otherwise (a log file, a pipe, a job scheduler) a plain line at least every 10 seconds.

Both report through ``update(label, done, total, loss=None, detail=None)``; ``label`` names
the phase ("stage 2", "tracking", "images"), each label gets its own bar or its own timing;
``detail`` is a short note shown after the count ("1 failed").
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TextIO

from nextface_core import logs

#: seconds between two plain progress lines of one phase (at most)
LINE_INTERVAL = 10.0


def _rate(per_second: float) -> str:
    """``2.0 it/s``; below 0.1 per second (a dataset's images, a slow renderer) per minute."""
    return f"{per_second:.1f} it/s" if per_second >= 0.1 else f"{per_second * 60.0:.1f} it/min"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass
class _Phase:
    start: float
    last_line: float
    start_done: int
    done: int
    finished: bool = False  # its "done in" line is out


@dataclass
class LineProgress:
    """Plain progress lines: a phase's first update, then one at least every ``interval``
    seconds (when updates keep coming), and the first that reaches its total; each with
    done/total, detail, loss, iterations per second (per minute when slower than 0.1/s) and
    the estimated time left. A count that goes down starts the phase again (the next image
    or chunk of a batch)."""

    stream: TextIO
    interval: float = LINE_INTERVAL
    clock: Callable[[], float] = time.monotonic
    _phases: dict[str, _Phase] = field(default_factory=dict)

    def update(self, label: str, done: int, total: int, loss: float | None = None, detail: str | None = None) -> None:
        now = self.clock()
        phase = self._phases.get(label)
        if phase is None or done < phase.done:
            phase = self._phases[label] = _Phase(now, now, done, done)
            self._line(label, done, total, loss, detail, phase, now)
        elif (done >= total and not phase.finished) or now - phase.last_line >= self.interval:
            self._line(label, done, total, loss, detail, phase, now)
        phase.done = done

    def _line(self, label: str, done: int, total: int, loss: float | None, detail: str | None, phase: _Phase, now: float) -> None:
        phase.last_line = now
        phase.finished = done >= total
        elapsed = now - phase.start
        rate = (done - phase.start_done) / elapsed if elapsed > 0 else 0.0
        parts = [f"{label}: {done}/{total}" if total else f"{label}: {done}"]
        if detail:
            parts.append(detail)
        if loss is not None:
            parts.append(f"loss {loss:.4g}")
        if rate > 0:
            parts.append(_rate(rate))
            if total and done < total:
                parts.append(f"ETA {_duration((total - done) / rate)}")
        if total and done >= total:
            parts.append(f"done in {_duration(elapsed)}")
        print(", ".join(parts), file=self.stream, flush=True)


class _RichProgress:
    """One rich bar per phase on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.tasks: dict[str, Any] = {}

    def update(self, label: str, done: int, total: int, loss: float | None = None, detail: str | None = None) -> None:
        shown = ", ".join(part for part in (detail, f"loss {loss:.4g}" if loss is not None else None) if part)
        if label not in self.tasks:
            self.tasks[label] = self.bar.add_task(label, total=total or None, loss=shown)
        self.bar.update(self.tasks[label], completed=done, total=total or None, loss=shown)


@contextlib.contextmanager
def progress(stream: TextIO | None = None) -> Iterator[Callable[..., None]]:
    """``update(label, done, total, loss=None, detail=None)`` for the duration of a command: a rich bar
    when ``stream`` (stderr) is a terminal, plain lines otherwise, nothing with ``-q``."""
    stream = stream or sys.stderr
    if logs.verbosity() <= logs.QUIET:
        yield lambda *args, **kwargs: None
    elif stream.isatty():
        rich = _RichProgress()
        with rich.bar:
            yield rich.update
    else:
        yield LineProgress(stream).update


def stage_progress(update: Callable[..., None]) -> Callable[[int, int, int, float], None]:
    """The fit's ``progress(stage, iteration, total, loss)`` shown through ``update`` of
    :func:`progress`: one phase per stage ("stage 2")."""

    def stages(stage: int, iteration: int, total: int, loss: float) -> None:
        update(f"stage {stage}", iteration, total, loss)

    return stages


def image_progress(update: Callable[..., None]) -> Callable[[int, int, int, float], None]:
    """``fit_dataset``'s ``progress(done, failed, total, per_minute)`` shown through ``update``
    of :func:`progress`: ``images: finished/total``, failed ones noted (the lines compute
    their own rate and ETA)."""

    def images(done: int, failed: int, total: int, per_minute: float) -> None:
        update("images", done + failed, total, detail=f"{failed} failed" if failed else None)

    return images
