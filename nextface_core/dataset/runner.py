"""The driver of ``nextface fit-dataset``: plan the tasks, skip finished ones, run the rest
on Ray or local processes with retries, keep the manifest current, and report.

Layout of ``OUT`` (a local folder or any fsspec URL)::

    OUT/dataset.json            the run's settings (a rerun must use the same ones)
    OUT/manifest.jsonl          one record per image (or manifest.parquet)
    OUT/report.json             the final report of the latest run
    OUT/report.html             a gallery of every finished image, linking to its page
    OUT/fits/<task>/            what `nextface fit` writes for that image or group,
                                plus records.json, written last when the task finished

Only the driver writes the manifest, the settings and the report; each task writes only
its own ``fits/<task>/`` folder, so no two tasks ever write the same path.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..config import Config
from ..errors import NextFaceError, UsageError
from .backends import Backend, ProcessBackend, RayBackend
from .gallery import write_dataset_report
from .manifest import (DONE, FAILED, PENDING, ImageRecord, assign_tasks, collect_images, fit_name, folder_name, manifest_name,
                       read_manifest, write_manifest)
from .storage import Location
from .task import TaskOutcome, TaskSpec, finished_records

log = logging.getLogger(__name__)

SETTINGS_FILE = "dataset.json"
REPORT_FILE = "report.json"
SETTINGS_FORMAT = "nextface-dataset-1"

#: (images finished this run, images failed this run, images to do this run, images per minute);
#: called as each task finishes and, while tasks run, at least every :data:`HEARTBEAT_SECONDS`
Progress = Callable[[int, int, int, float], None]
#: the longest a running dataset goes without a progress call (a task may take minutes)
HEARTBEAT_SECONDS = 1.0


@dataclass
class DatasetReport:
    """The outcome of a run: counts, failures with reasons, throughput and the
    distribution of each per-image quality metric (over every finished image)."""

    total: int
    done: int
    failed: int
    skipped: int
    processed: int
    wall_seconds: float
    images_per_minute: float
    backend: str
    workers: int
    failures: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    retried_tasks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as text, one line per fact."""
        out = [
            f"{self.total} images: {self.done} done, {self.failed} failed, {self.total - self.done - self.failed} pending; "
            f"{self.skipped} already done before this run",
            f"this run: {self.processed} images in {self.wall_seconds:.1f} s on {self.workers} {self.backend} workers "
            f"= {self.images_per_minute:.2f} images/min ({self.retried_tasks} task retries)",
        ]
        for name, d in self.metrics.items():
            out.append(f"{name}: median {d['median']:.4g}, mean {d['mean']:.4g}, p10 {d['p10']:.4g}, p90 {d['p90']:.4g}, "
                       f"min {d['min']:.4g}, max {d['max']:.4g} (n={int(d['count'])})")
        out += [f"failed {f['image']}: {f['error']}" for f in self.failures]
        return out


def metric_distribution(records: Sequence[ImageRecord]) -> dict[str, dict[str, float]]:
    """``{metric: {count, min, p10, median, mean, p90, max}}`` over the finished images."""
    values: dict[str, list[float]] = {}
    for r in records:
        if r.status == DONE:
            for name, v in r.metrics.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    values.setdefault(name, []).append(float(v))
    out = {}
    for name, vs in sorted(values.items()):
        a = np.asarray(vs)
        p10, median, p90 = np.percentile(a, [10, 50, 90])
        out[name] = {"count": float(a.size), "min": float(a.min()), "p10": float(p10), "median": float(median),
                     "mean": float(a.mean()), "p90": float(p90), "max": float(a.max())}
    return out


def _settings(config: Config, shared_identity: bool, group_by: str | None, skip_stages: Sequence[int], manifest_format: str) -> dict[str, Any]:
    return {"format": SETTINGS_FORMAT, "shared_identity": shared_identity, "group_by": group_by,
            "skip_stages": sorted(set(skip_stages)), "manifest_format": manifest_format, "config": config.as_dict()}


def _check_settings(out: Location, settings: dict[str, Any]) -> None:
    """A rerun must fit with the settings of the first run: mixed results are not one dataset."""
    if not out.exists(SETTINGS_FILE):
        return
    try:
        before = json.loads(out.read_bytes(SETTINGS_FILE))
    except ValueError:
        return
    now = json.loads(json.dumps(settings))  # compare as stored
    changed = sorted(k for k in now if before.get(k) != now[k])
    if changed:
        raise UsageError(f"{out.url} holds a run with other settings ({', '.join(changed)} differ)",
                         "rerun with the same options and config, or pass another -o folder")


def _resume(records: list[ImageRecord], tasks: dict[str, list[ImageRecord]], out: Location) -> list[ImageRecord]:
    """Carry over what earlier runs finished; returns the earlier records no longer in the input."""
    previous = {r.key: r for r in read_manifest(out)}
    for r in records:
        p = previous.pop(r.key, None)
        if p is not None:
            r.attempts = p.attempts
            if p.status == DONE and p.task == r.task:
                r.status, r.output, r.metrics, r.seconds, r.error = DONE, p.output, p.metrics, p.seconds, None
    for task, members in tasks.items():  # finished but not yet in the manifest (interrupted run)
        if all(m.status == DONE for m in members):
            continue
        marker = finished_records(out, folder_name(task)) or {}
        if all(marker.get(m.key, {}).get("status") == DONE for m in members):
            for m in members:
                _apply(m, marker[m.key])
    return list(previous.values())


def _apply(record: ImageRecord, update: dict[str, Any]) -> None:
    for k, v in update.items():
        setattr(record, k, v)


def _make_backend(use_ray: bool, workers: int | None, address: str | None, config: Config) -> tuple[Backend, str]:
    if use_ray:
        return RayBackend(workers, address, config.run.device), "ray"
    if address:
        raise UsageError("--address joins a Ray cluster, but --no-ray runs local processes", "drop one of the two options")
    return ProcessBackend(workers), "process"


def _execute(backend: Backend, specs: dict[str, TaskSpec], tasks: dict[str, list[ImageRecord]], retries: int,
             progress: Progress | None, started: float, flush: Callable[[], None], flush_seconds: float) -> tuple[int, int, int]:
    """Run ``specs`` on ``backend`` (at most ``backend.workers`` at a time), retrying tasks
    whose worker died or that raised unexpectedly, and update the records as tasks finish.
    Returns (images done, images failed, task retries). ``progress`` hears of every finished
    task and, while none finishes, a heartbeat every :data:`HEARTBEAT_SECONDS`. Unfinished
    tasks are cancelled when this returns by an exception (Ctrl-C)."""
    n_todo = sum(len(tasks[t]) for t in specs)
    attempts = {t: 0 for t in specs}
    queue, running = deque(specs), {}
    done_now = failed_now = retried = 0
    last_flush = time.perf_counter()

    def report() -> None:
        if progress is not None:
            minutes = (time.perf_counter() - started) / 60.0
            progress(done_now, failed_now, n_todo, done_now / minutes if minutes > 0 else 0.0)

    try:
        while queue or running:
            while queue and len(running) < backend.workers:
                t = queue.popleft()
                running[backend.submit(specs[t])] = t
            finished = backend.wait(list(running), timeout=HEARTBEAT_SECONDS)
            if not finished:
                report()
            for handle, result in finished:
                t = running.pop(handle)
                attempts[t] += 1
                members = tasks[t]
                for m in members:
                    m.attempts += 1
                if isinstance(result, TaskOutcome):
                    for m in members:
                        _apply(m, result.records.get(m.key, {"status": FAILED, "error": "the task returned no record"}))
                elif attempts[t] <= retries and not isinstance(result, NextFaceError):  # input/usage errors are final
                    log.warning("task %s failed (%s); retrying (%d of %d)", t, result, attempts[t], retries)
                    retried += 1
                    queue.append(t)
                    continue
                else:
                    reason = getattr(result, "message", None) or f"{type(result).__name__}: {result}"
                    n = attempts[t]
                    for m in members:
                        m.status, m.error = FAILED, f"{reason} (after {n} attempt{'s' if n > 1 else ''})"
                done_now += sum(m.status == DONE for m in members)
                failed_now += sum(m.status == FAILED for m in members)
                report()
            if time.perf_counter() - last_flush > flush_seconds:
                flush()
                last_flush = time.perf_counter()
    finally:
        backend.cancel(list(running))
    return done_now, failed_now, retried


def fit_dataset(
    source: str,
    out: str,
    config: Config,
    *,
    workers: int | None = None,
    address: str | None = None,
    use_ray: bool = True,
    shared_identity: bool = False,
    group_by: str | None = None,
    retries: int = 2,
    skip_stages: Sequence[int] = (),
    manifest_format: str = "jsonl",
    threads: int | None = None,
    progress: Progress | None = None,
    flush_seconds: float = 2.0,
) -> DatasetReport:
    """Fit every image of ``source`` (a folder or a manifest) into ``out``; see the module notes.

    ``workers``: concurrent tasks (default: the CPUs, or the cluster's GPUs on CUDA);
    ``retries``: extra attempts for a task whose worker died or which raised an
    unexpected error (input errors are final); ``threads``: torch threads per task
    (default: this machine's cores / workers). Interrupting the run (Ctrl-C) flushes the
    manifest; the next run with the same ``out`` does only the unfinished images.
    """
    if retries < 0:
        raise UsageError(f"--retries {retries} is negative", "pass 0 or more")
    started = time.perf_counter()
    loc = Location.of(out)
    if loc.in_process_only:
        raise UsageError(f"{out} lives in this process's memory, which workers cannot reach",
                         "write to a local folder or a shared store (file://, s3://, gs:// ...)")
    records = collect_images(source, group_by)
    tasks = assign_tasks(records, shared_identity)
    manifest_name(manifest_format)  # an unknown format, or Parquet without pyarrow, fails before any work
    settings = _settings(config, shared_identity, group_by, skip_stages, manifest_format)
    _check_settings(loc, settings)
    gone = _resume(records, tasks, loc)
    loc.write_bytes(SETTINGS_FILE, json.dumps(settings, indent=1).encode())
    everything = records + gone
    todo = [t for t, members in tasks.items() if any(m.status != DONE for m in members)]
    for t in todo:  # a group with one unfinished image is fitted again as a whole
        for m in tasks[t]:
            m.status, m.error = PENDING, None
    skipped = sum(r.status == DONE for r in records)
    write_manifest(loc, everything, manifest_format)
    backend_name, n_workers, retried, done_now, failed_now = ("ray" if use_ray else "process"), workers or 0, 0, 0, 0
    if todo:
        backend, backend_name = _make_backend(use_ray, workers, address, config)
        n_workers = backend.workers
        per_task = threads or max(1, multiprocessing.cpu_count() // n_workers if not address else 1)
        data = config.as_dict()
        specs = {
            t: TaskSpec(t, folder_name(t), tuple((m.key, m.image, fit_name(m)) for m in tasks[t]), loc.url_of(), data,
                        shared_identity and len(tasks[t]) > 1, tuple(sorted(set(skip_stages))), per_task)
            for t in todo
        }
        try:
            done_now, failed_now, retried = _execute(backend, specs, tasks, retries, progress, started,
                                                     lambda: write_manifest(loc, everything, manifest_format), flush_seconds)
        finally:
            backend.close()
            write_manifest(loc, everything, manifest_format)
    wall = time.perf_counter() - started
    report = DatasetReport(
        total=len(records),
        done=sum(r.status == DONE for r in records),
        failed=sum(r.status == FAILED for r in records),
        skipped=skipped,
        processed=done_now + failed_now,
        wall_seconds=wall,
        images_per_minute=done_now / (wall / 60.0) if wall > 0 else 0.0,
        backend=backend_name,
        workers=n_workers,
        failures=[{"image": r.key, "error": r.error or ""} for r in records if r.status == FAILED],
        metrics=metric_distribution(records),
        retried_tasks=retried,
    )
    loc.write_bytes(REPORT_FILE, json.dumps(report.to_dict(), indent=1).encode())
    write_dataset_report(loc)
    return report
