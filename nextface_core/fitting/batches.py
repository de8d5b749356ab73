"""Fitting a folder of any size in bounded memory: chunks of ``run.batch_size`` photos.

Only one chunk is in memory at a time: its photos are read, their landmarks detected, the
chunk fitted and its outputs written before the next chunk's photos are read. Photos that do
not share an identity are fitted independently (each image's stage 1 keeps its own damping
and acceptance, stages 2–3 give each image its own gradients), so a photo's result does not
depend on the chunk it lands in beyond the fit's tolerance. A shared-identity fit is one
problem: all its views stay in one batch.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..files import write_text
from .fitter import Fitter, Progress
from .result import METRIC_KEYS, Checkpoint

#: per image folder: written last by ``save_outputs``, so its presence marks a finished image
DONE_FILE = "params.json"


def chunks(count: int, batch_size: int) -> list[range]:
    """``count`` items in consecutive ranges of at most ``batch_size``."""
    return [range(i, min(i + batch_size, count)) for i in range(0, count, batch_size)]


@dataclass
class FolderRun:
    """What :func:`fit_files` did: the summary path, the images fitted, and those left out
    with the reason (unreadable, no face, already fitted before a resume)."""

    summary: Path
    fitted: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    peak_memory_mb: float = 0.0


def fit_files(
    fitter: Fitter,
    names: Sequence[str],
    load: Callable[[int], np.ndarray],
    out: Path,
    batch_size: int,
    shared_identity: bool = False,
    start: Checkpoint | None = None,
    skip_stages: Sequence[int] = (),
    progress: Progress | None = None,
) -> FolderRun:
    """Fit the images ``names`` (``load(i)`` reads image ``i`` as ``[H,W,3]`` uint8) in chunks
    of ``batch_size`` (one chunk for a shared identity) and write every output under ``out``
    with one merged ``summary.json``.

    With ``start`` (a checkpoint of an interrupted run), images whose result folder is
    complete are not fitted again, and the checkpoint resumes the chunk it was written for.
    An interruption raises :class:`FitStopped` with the interrupted chunk's checkpoint.
    """
    from ..report import write_fit_report
    from .outputs import save_outputs

    order = list(range(len(names)))
    run = FolderRun(out / "summary.json")
    rows: list[dict] = []
    if start is not None:
        finished = [i for i in order if (out / names[i] / DONE_FILE).is_file() and names[i] not in start.names]
        for i in finished:
            rows.append({"name": names[i], **_saved_metrics(out / names[i] / DONE_FILE)})
            run.skipped.append((names[i], "fitted before the interruption"))
        order = [i for i in order if i not in finished]
    parts = [order] if shared_identity else [[order[j] for j in r] for r in chunks(len(order), batch_size)]
    batches: list[tuple[list[str], list[dict]]] = []
    summary: dict = {}
    skip_faceless = fitter.config.run.skip_no_face
    # one detector for the run, not one per chunk (with one per chunk, a 100-photo run's peak RSS
    # rose by ~40 MB a chunk; the cause was not isolated)
    detector = fitter.registry.create("detector", fitter.config.run.landmarks, fitter.config)
    for number, part in enumerate(parts):
        chunk_names = [names[i] for i in part]
        images = [load(i) for i in part]
        detections = detector.detect(images, chunk_names)
        found = np.stack([s.found.cpu().numpy() for s in detections.values()]).all(0)
        if skip_faceless:
            run.skipped += [(chunk_names[i], "no face found") for i in np.flatnonzero(~found)]
            if not found.any():
                continue
        kept = [n for n, f in zip(chunk_names, found) if f or not skip_faceless]
        resume = start if start is not None and start.names == kept else None
        if start is not None and resume is None and len(parts) == 1:
            resume = start  # the fit refuses it, naming what differs
        result = fitter.fit(images, chunk_names, landmarks=detections, shared_identity=shared_identity,
                            start=resume, skip_stages=skip_stages, progress=progress)
        del images, detections
        label = f"batch{number + 1:02d}_" if len(parts) > 1 else ""
        result.checkpoint().save(out / f"checkpoint_{label}stage{result.completed_stage}.npz")  # first: resumable
        summary = save_outputs(result, out, prefix=label)
        batches.append((result.names, summary["stages"]))
        rows += summary["images"]
        run.fitted += result.names
        run.peak_memory_mb = max(run.peak_memory_mb, result.peak_memory_mb)
        del result
        gc.collect()  # free what the chunk left behind before the next chunk's photos are read
    if not run.fitted and not rows:
        raise InputError(f"no face found in any of {len(names)} images", "check the images or the detector")
    summary.update(images=rows, peak_memory_mb=run.peak_memory_mb)
    if len(batches) > 1:
        summary["stages"] = _totals([stages for _, stages in batches])
        summary["batches"] = [{"names": n, "stages": stages} for n, stages in batches]
    write_text(run.summary, json.dumps(summary, indent=2))
    write_fit_report(out)
    return run


def _totals(batches: list[list[dict]]) -> list[dict]:
    """Per stage, iterations and seconds summed over the batches (losses are per batch)."""
    out = []
    for rows in zip(*batches):
        its, secs = sum(r["iterations"] for r in rows), sum(r["seconds"] for r in rows)
        out.append({"stage": rows[0]["stage"], "iterations": its, "seconds": secs,
                    "iterations_per_second": its / secs if secs > 0 else 0.0, "final_loss": None,
                    "final_terms": {}, "skipped": all(r["skipped"] for r in rows)})
    return out


def _saved_metrics(path: Path) -> dict:
    """The metrics an earlier run wrote into an image's ``params.json``."""
    meta = json.loads(path.read_text())
    return {k: meta.get(k) for k in METRIC_KEYS}
