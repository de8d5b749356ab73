"""One task of a dataset run: fit one image (or one identity group) and write its folder.

:func:`run_task` is what a Ray task or a local worker process executes. It loads the
images, fits them with :class:`~nextface_core.fitting.Fitter`, writes the result with
:func:`~nextface_core.fitting.save_result` into a local staging folder, uploads it (each file
atomically) to ``OUT/fits/<task>/`` and writes ``OUT/fits/<task>/records.json`` last: that
file marks the task finished, so a rerun that finds it skips the task even when the
manifest was not flushed before an interruption. A task writes nothing outside its folder.

Errors in the input (a corrupt image, no face, bad landmarks) are returned as failed
records (a retry would fail the same way); anything else raises, and the driver retries.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InputError, NextFaceError
from .manifest import DONE, FAILED

RECORDS_FILE = "records.json"
#: staging folders are ``<tmp>/nextface-task-<host>-<pid>-<random>``: a worker that was killed
#: (a preempted node, ``kill -9``) cannot remove its own, so the next worker process on the host
#: does, once (Ray starts a new worker for the one that died)
STAGING_PREFIX = "nextface-task-"
_SWEPT: list[bool] = []  # whether this process has swept
_FITTERS: dict[str, Any] = {}  # one Fitter per worker process and config: the model loads once


@dataclass(frozen=True)
class TaskSpec:
    """What a worker needs to run one task (plain data, cheap to ship to another process).

    ``images``: ``(key, source, fit name)`` per image; ``out``: the output URL;
    ``folder``: the task's folder below ``OUT/fits``; ``config``: ``Config.data``.
    """

    task: str
    folder: str
    images: tuple[tuple[str, str, str], ...]
    out: str
    config: dict[str, Any]
    shared_identity: bool = False
    skip_stages: tuple[int, ...] = ()
    threads: int = 1


@dataclass
class TaskOutcome:
    """Per-image results of a task: ``{key: fields of ImageRecord to update}``."""

    task: str
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    worker: str = ""


def _fitter(config_data: dict[str, Any]) -> Any:
    from ..config import Config
    from ..fitting import Fitter

    key = json.dumps(config_data, sort_keys=True)
    if key not in _FITTERS:
        _FITTERS.clear()
        _FITTERS[key] = Fitter(Config(config_data))
    return _FITTERS[key]


def _load(spec: TaskSpec, staging: Path) -> tuple[list[Any], list[tuple[str, str, str]], dict[str, str]]:
    """Images that load, their entries, and an error per image that does not."""
    from ..images import load_image
    from .storage import local_copy

    images, kept, errors = [], [], {}
    for entry in spec.images:
        key, source, _ = entry
        try:
            images.append(load_image(local_copy(source, staging)))
            kept.append(entry)
        except InputError as exc:
            errors[key] = exc.message
        except FileNotFoundError:
            errors[key] = f"image {source} does not exist"
    return images, kept, errors


def _staging_prefix(pid: int | None = None) -> str:
    return f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid() if pid is None else pid}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale_staging() -> list[Path]:
    """Remove this host's staging folders whose worker process no longer runs → the removed paths."""
    import shutil

    removed = []
    mine = f"{STAGING_PREFIX}{socket.gethostname()}-"
    for path in Path(tempfile.gettempdir()).glob(f"{mine}*"):
        pid = path.name[len(mine):].split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def run_task(spec: TaskSpec) -> TaskOutcome:
    """Fit the task's images and write ``OUT/fits/<folder>/``; see the module notes."""
    import torch

    from ..fitting import save_result
    from .storage import Location

    torch.set_num_threads(max(1, spec.threads))
    start = time.perf_counter()
    out = Location.of(spec.out)
    outcome = TaskOutcome(spec.task, worker=f"{socket.gethostname()}:{os.getpid()}")
    if not _SWEPT:
        _SWEPT.append(True)
        sweep_stale_staging()
    with tempfile.TemporaryDirectory(prefix=_staging_prefix()) as tmp:
        staging = Path(tmp)
        images, kept, errors = _load(spec, staging / "inputs")
        for key, message in errors.items():
            outcome.records[key] = {"status": FAILED, "error": message}
        if kept:
            keys, names = [k for k, _, _ in kept], [n for _, _, n in kept]
            try:
                fitter = _fitter(spec.config)
                found = fitter.detect(images, keys)  # looked up by key: "alice/001" or its file name
                landmarks = {s: replace(ls, names=names) for s, ls in found.items()}
                result = fitter.fit(images, names, landmarks=landmarks, shared_identity=spec.shared_identity,
                                    skip_stages=spec.skip_stages)
                save_result(result, staging / "result")
            except NextFaceError as exc:
                if not isinstance(exc, InputError):
                    raise
                for key in keys:
                    outcome.records[key] = {"status": FAILED, "error": exc.message}
            else:
                summary = json.loads((staging / "result" / "summary.json").read_text())
                metrics = {row["name"]: {k: v for k, v in row.items() if k != "name"} for row in summary["images"]}
                seconds = (time.perf_counter() - start) / len(kept)
                out.upload_folder(staging / "result", f"fits/{spec.folder}")
                for key, name in zip(keys, names):
                    outcome.records[key] = {
                        "status": DONE, "error": None, "seconds": seconds, "metrics": metrics[name],
                        "output": out.url_of("fits", spec.folder, name),
                    }
    if any(r["status"] == DONE for r in outcome.records.values()):
        out.write_bytes(f"fits/{spec.folder}/{RECORDS_FILE}", json.dumps(outcome.records, indent=1).encode())
    return outcome


def finished_records(out: Any, folder: str) -> dict[str, dict[str, Any]] | None:
    """The records a finished task left in ``OUT/fits/<folder>/records.json``, or None."""
    name = f"fits/{folder}/{RECORDS_FILE}"
    if not out.exists(name):
        return None
    try:
        return json.loads(out.read_bytes(name))
    except (ValueError, UnicodeDecodeError):
        return None
