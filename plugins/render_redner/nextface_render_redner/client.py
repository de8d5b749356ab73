"""Start, talk to and stop the redner worker process (the plugin's side of :mod:`.worker`).

:class:`WorkerProcess` starts ``python -m nextface_redner_worker`` in the configured interpreter,
with only the plugin's ``worker/`` folder on its ``PYTHONPATH`` (so a Python 3.8 never sees this
Python's packages), in its own session (a Ctrl-C in the terminal reaches the fit, not the worker;
the fit then stops the worker). It waits for the worker's ``hello``, and turns every way the
worker can fail into one :class:`WorkerError` (exit code 4) with a fix: an interpreter that does
not exist or does not start, no torch / no redner / a too-old redner there, another protocol
version, a worker that dies or is killed mid-request (naming its exit status and its last stderr
lines). The worker is stopped by :meth:`WorkerProcess.close`, by garbage collection or at
interpreter exit; if this process is killed outright, the worker exits by itself (stdin closed,
parent gone; on Linux the kernel's parent-death signal, tied to the thread that started the
worker: create the renderer in a thread that outlives it, as the fit does in the main thread).
"""

from __future__ import annotations

import collections
import logging
import os
import select
import shutil
import signal
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from nextface_core.errors import BackendUnavailableError

from .worker import nextface_redner_wire as wire

log = logging.getLogger(__name__)

WORKER_DIR = Path(__file__).with_name("worker")
WORKER_MODULE = "nextface_redner_worker"
STDERR_LINES = 20  # kept for error messages
PIPE_BYTES = 1 << 20  # Linux pipe buffer asked for (default 64 KiB): fewer wake-ups per megabyte
F_SETPIPE_SZ = 1031  # fcntl constant (Python ≥ 3.10 names it; the value is Linux's)


class WorkerError(BackendUnavailableError):
    """The redner worker could not start here, failed a request, or died while working."""


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker said in its ``hello``."""

    backend: str
    backend_version: str
    device: str
    python: str
    executable: str
    torch: str
    pid: int

    def describe(self) -> str:
        """One line for ``nextface plugins list``."""
        mode = "GPU (CUDA)" if self.device.startswith("cuda") else "CPU"
        return (f"worker {self.executable} (Python {self.python}, torch {self.torch}): "
                f"{self.backend} {self.backend_version}, {mode} mode")


def _exit_status(code: int | None) -> str:
    if code is None:
        return "ran but did not speak the worker protocol"
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


class WorkerProcess:
    """One running worker. ``python``: the interpreter (a path, or a name on PATH); ``source``:
    where that setting came from, for messages; ``args``: the worker's command-line options;
    ``pythonpath``: folders added after the worker folder (tests add their stand-in's)."""

    def __init__(
        self,
        python: str,
        *,
        source: str = "python",
        module: str = WORKER_MODULE,
        args: Sequence[str] = (),
        pythonpath: Sequence[str | Path] = (),
        startup_timeout: float = 120.0,
    ) -> None:
        self.python, self.source = python, source
        self._fix = f"set {source} to the python of an environment with torch and redner (plugin README: a Python 3.8 environment)"
        exe = shutil.which(python) if os.sep not in python else python
        if exe is None or not os.path.isfile(exe):
            raise WorkerError(f"the redner worker interpreter {python!r} ({source}) does not exist", self._fix)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONSTARTUP")}
        env["PYTHONPATH"] = os.pathsep.join([str(WORKER_DIR), *map(str, pythonpath)])
        env["NEXTFACE_REDNER_PARENT"] = str(os.getpid())
        try:
            self._proc = subprocess.Popen(
                [exe, "-m", module, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, cwd=WORKER_DIR, start_new_session=True,
            )
        except OSError as exc:
            raise WorkerError(f"cannot start the redner worker interpreter {exe} ({source}): {exc.strerror or exc}", self._fix) from None
        self.executable = exe
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._drain = threading.Thread(target=self._read_stderr, name=f"redner-worker-{self._proc.pid}-stderr", daemon=True)
        self._drain.start()
        self._finalizer = weakref.finalize(self, _stop, self._proc, self._drain)
        _grow_pipes(self._proc)
        self.info = self._handshake(startup_timeout)
        self.requests = 0
        self.transport_s = 0.0  # round-trip time not spent in the worker's back end, summed over requests

    # -- lifetime -------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._finalizer.alive and self._proc.poll() is None

    @property
    def stopped(self) -> bool:
        """Whether this side stopped the worker (:meth:`close`, or a request it broke off);
        a worker that died on its own is not stopped, and its next request says how it died."""
        return not self._finalizer.alive

    def close(self) -> None:
        """Ask the worker to quit, then terminate / kill it if it does not; idempotent."""
        self._finalizer()

    def stderr_tail(self) -> list[str]:
        """The worker's last stderr lines (at most :data:`STDERR_LINES`)."""
        return list(self._tail)

    def _read_stderr(self) -> None:
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._tail.append(line)
                log.debug("redner worker %d: %s", self._proc.pid, line)

    # -- requests -------------------------------------------------------------------------

    def request(self, op: str, fields: dict[str, Any], arrays: dict[str, torch.Tensor], reply: str):
        """Send one request and wait for its reply → ``(fields, arrays)``.

        Anything that interrupts a request half-way (a signal, a broken pipe) leaves the
        stream unusable, so the worker is stopped first; the next renderer call starts a
        fresh one.
        """
        if not self.alive:
            raise self._died(op)
        start = time.perf_counter()
        try:
            wire.write_message(self._proc.stdin, op, fields, arrays)
            got, fields_back, arrays_back = wire.read_message(self._proc.stdout)
        except (BrokenPipeError, wire.ProtocolError) as exc:
            raise self._died(op, exc) from None
        except BaseException:
            self._kill()
            raise
        if got == "error":
            raise WorkerError(f"the redner worker failed to {op}: {fields_back.get('message', '?')}",
                              "see the worker's traceback in the debug log; check the inputs, or use --renderer vertex or mitsuba")
        if got != reply:
            self._kill()
            raise WorkerError(f"the redner worker answered {op!r} with {got!r} (expected {reply!r})", "reinstall nextface-render-redner")
        self.requests += 1
        self.transport_s += time.perf_counter() - start - float(fields_back.get("worker_s", 0.0))
        return fields_back, arrays_back

    def _handshake(self, timeout: float) -> WorkerInfo:
        try:
            ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
            if not ready:
                self._kill()
                raise WorkerError(
                    f"{self.executable} ({self.source}) did not start the redner worker within {timeout:g} s",
                    f"{self._fix}; or raise [plugins.render_redner] startup_timeout",
                )
            op, fields, _ = wire.read_message(self._proc.stdout)
        except wire.VersionMismatch as exc:
            self._kill()
            raise WorkerError(
                f"the redner worker in {self.executable} speaks protocol version {exc.theirs}, this plugin version {wire.VERSION}",
                "the worker module and the plugin come from different installs: reinstall nextface-render-redner",
            ) from None
        except wire.ProtocolError as exc:
            raise self._died("start", exc, fix=self._fix) from None
        except BaseException:
            self._kill()
            raise
        if op != "hello":
            self._kill()
            raise WorkerError(f"the redner worker in {self.executable} began with {op!r} instead of 'hello'", self._fix)
        if not fields.get("ok"):
            self._kill()
            raise WorkerError(f"the redner worker cannot run: {fields.get('error')}", fields.get("fix") or self._fix)
        return WorkerInfo(
            str(fields["backend"]), str(fields["backend_version"]), str(fields["device"]), str(fields["python"]),
            str(fields["executable"]), str(fields.get("torch", "?")), int(fields["pid"]),
        )

    def _died(self, doing: str, cause: Exception | None = None, fix: str | None = None) -> WorkerError:
        """The error for a worker that is gone or broke the protocol (stopped here): its exit status and
        last stderr lines."""
        gone = cause is None or isinstance(cause, (BrokenPipeError, wire.PeerClosed))
        try:
            code = self._proc.wait(timeout=5.0 if gone else 0.2)  # an exiting worker gets time to finish
        except subprocess.TimeoutExpired:
            code = None
        self._kill()  # also waits for the stderr reader, so the tail holds the last lines
        tail = self.stderr_tail()[-5:]
        lines = " | ".join(tail) if tail else "(none)"
        why = "" if gone else f" ({cause})"
        return WorkerError(
            f"the redner worker (pid {self._proc.pid}, {self.executable}) {_exit_status(code)} during {doing}{why}; "
            f"its last stderr lines: {lines}",
            fix or "see the worker's last lines above; then rerun (a fit resumes from its checkpoint), "
            "or use --renderer vertex or mitsuba",
        )

    def _kill(self) -> None:
        _signal_group(self._proc, signal.SIGKILL)
        self._finalizer()


def _grow_pipes(proc: subprocess.Popen) -> None:
    """Ask Linux for :data:`PIPE_BYTES` pipe buffers (best effort; other systems keep theirs)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        return
    for stream in (proc.stdin, proc.stdout):
        try:
            fcntl.fcntl(stream.fileno(), F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    """Signal the worker's whole process group (its own session: anything it started goes too)."""
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen, drain: threading.Thread) -> None:
    """Stop a worker: ``quit`` and close its stdin, then SIGTERM its process group after 5 s,
    SIGKILL after 2 more."""
    if proc.poll() is None:
        try:
            wire.write_message(proc.stdin, "quit")
        except (OSError, ValueError):
            pass
    try:
        proc.stdin.close()
    except (OSError, ValueError):
        pass
    for signum, wait in ((None, 5.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, None)):
        if signum is not None:
            _signal_group(proc, signum)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    drain.join(timeout=2)
    proc.stdout.close()
    if not drain.is_alive():  # else a child of the worker still holds the pipe: closing would wait for it
        proc.stderr.close()
