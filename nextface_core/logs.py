"""What a run prints on stderr: Python logging, warnings, and the native libraries' own logs.

Three verbosities (the CLI's ``-q`` / default / ``-v``):

- ``QUIET``: errors only (no warnings, no progress, native libraries at error level);
- ``NORMAL``: NextFace's warnings as ``warning: …`` lines (other packages' only when they
  are errors), native libraries at error level;
- ``VERBOSE``: NextFace's info messages too, and the native libraries' own logs as they
  print them (MediaPipe/TFLite/absl/glog lines, Dr.Jit and Mitsuba warnings).

Native libraries log from C++ straight to file descriptor 2, past Python: glog honours
``GLOG_minloglevel``, TensorFlow Lite ``TF_CPP_MIN_LOG_LEVEL``, but absl's logger and the
XNNPACK delegate's ``INFO:`` line heed neither, so :func:`native_stderr` redirects fd 2
around the calls that print them and passes on only their error lines. Nothing here
imports a native library.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from typing import Any, Iterator, TextIO

QUIET, NORMAL, VERBOSE = -1, 0, 1

#: environment read by native libraries when they load; set (unless the user set them) for
#: NORMAL and QUIET: 2 = errors only for glog and TensorFlow (Lite)
NATIVE_QUIET_ENV = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}

#: a native error line: glog/absl "E0000 …"/"F0000 …", TFLite "ERROR: …"
_NATIVE_ERROR = re.compile(r"^(?:[EF]\d{4} |ERROR: |FATAL: )")
#: a native library's other log lines: glog/absl "I0000 …"/"W0000 …", TFLite "INFO: …"/"WARNING: …"
_NATIVE_LOG = re.compile(r"^(?:[IW]\d{4} |INFO: |WARNING: |VERBOSE: )")

_state = {"verbosity": NORMAL}


def verbosity() -> int:
    """The verbosity set by :func:`configure` (``NORMAL`` until then)."""
    return _state["verbosity"]


def _shown(record: logging.LogRecord) -> bool:
    """Below ``VERBOSE``, other packages' loggers (matplotlib's font cache, ...) show only errors."""
    return record.levelno >= logging.ERROR or _state["verbosity"] >= VERBOSE or record.name.startswith("nextface")


class _Formatter(logging.Formatter):
    """``warning: message`` / ``error: message``; info and debug lines as they are."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        if record.exc_info and _state["verbosity"] >= VERBOSE:
            text += "\n" + self.formatException(record.exc_info)
        return text


#: a file of NextFace's own packages (the core, the CLI, a plugin named nextface_*)
_OURS = re.compile(r"[/\\]nextface[_a-z]*[/\\]")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 (warnings API)
    """Python warnings as log records; other packages' warnings (deprecations inside
    mediapipe's protobuf use, ...) only at ``VERBOSE``."""
    if _state["verbosity"] < VERBOSE and not _OURS.search(str(filename)):
        return
    where = f" ({category.__name__} at {filename}:{lineno})" if _state["verbosity"] >= VERBOSE else ""
    logging.getLogger("nextface.warnings").warning("%s%s", message, where)


def configure(level: int = NORMAL, stream: TextIO | None = None) -> None:
    """Set up logging for a command: one stderr handler on the root logger, Python warnings
    as ``warning: …`` lines, and the native libraries' log levels. Call once, early (before
    a native library loads); calling again replaces the handler."""
    _state["verbosity"] = level
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_nextface", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter())
    handler.addFilter(_shown)
    handler._nextface = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel({QUIET: logging.ERROR, NORMAL: logging.WARNING}.get(level, logging.INFO))
    warnings.showwarning = _show_warning
    if level < VERBOSE:
        for key, value in NATIVE_QUIET_ENV.items():
            os.environ.setdefault(key, value)


class NativeStderr:
    """File descriptor 2 redirected into a temporary file between :meth:`start` and
    :meth:`stop`, below ``VERBOSE`` (at it, nothing happens). On stop the captured text is
    passed on without the native libraries' log lines: glog/absl ``I…``/``W…`` lines, TFLite
    ``INFO:`` lines and absl's preamble are dropped, their error lines go through logging,
    and anything else (Python's own stderr writes in the meantime) is printed as it was.

    MediaPipe starts its graph on worker threads that log after the constructor returns,
    so a detector keeps the redirect from its construction to the end of its first frame.
    """

    def __init__(self) -> None:
        self._sink: Any = None
        self._saved = -1

    def start(self) -> None:
        if self._sink is not None or _state["verbosity"] >= VERBOSE:
            return
        sys.stderr.flush()
        self._sink = tempfile.TemporaryFile(mode="w+b")
        self._saved = os.dup(2)
        os.dup2(self._sink.fileno(), 2)

    def stop(self) -> None:
        if self._sink is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._sink.seek(0)
        captured = self._sink.read().decode("utf-8", "replace")
        self._sink.close()
        self._sink = None
        for line in captured.splitlines():
            if _NATIVE_ERROR.match(line):
                logging.getLogger("nextface.native").error("%s", line.strip())
            elif not _NATIVE_LOG.match(line):
                print(line, file=sys.stderr)


@contextlib.contextmanager
def native_stderr() -> Iterator[None]:
    """:class:`NativeStderr` around one call into a native library."""
    redirect = NativeStderr()
    redirect.start()
    try:
        yield
    finally:
        redirect.stop()


def native_log_level() -> str:
    """The level name native libraries with a log API should use: "error" below ``VERBOSE``,
    "warn" at it (Dr.Jit and Mitsuba)."""
    return "warn" if _state["verbosity"] >= VERBOSE else "error"


__all__ = ["NORMAL", "QUIET", "VERBOSE", "NativeStderr", "configure", "native_log_level", "native_stderr", "verbosity"]
