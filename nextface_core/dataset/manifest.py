"""The dataset's images, how they are grouped into tasks, and the run's manifest.

Input: a folder (searched recursively; an image's key is its path below the folder without
the suffix, e.g. ``alice/001``) or a manifest file (``.jsonl``, ``.csv`` or ``.parquet``)
with an ``image`` column (a path relative to the manifest, an absolute path or an fsspec
URL), an optional ``name`` column (the key; default the image's file name without suffix)
and any other columns (one of them may group images with ``group_by``).

State: ``OUT/manifest.jsonl`` (or ``OUT/manifest.parquet``) holds one :class:`ImageRecord`
per image: status, output location, quality metrics (from the task's ``summary.json``),
attempts and error. It is what makes reruns resumable: finished images are skipped.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from ..errors import InputError, UsageError
from ..images import IMAGE_SUFFIXES
from ..install import extra_command
from .storage import Location

PENDING, DONE, FAILED = "pending", "done", "failed"
MANIFEST_FORMATS = ("jsonl", "parquet")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ImageRecord:
    """One image of the dataset and what became of it.

    ``key``: unique name in the dataset; ``image``: where it is read from; ``group``: the
    identity group (``None`` = fitted alone); ``task``: the task that fits it; ``output``:
    its result folder; ``metrics``: its row of ``summary.json`` (landmark error, PSNR ...).
    """

    key: str
    image: str
    group: str | None = None
    task: str = ""
    status: str = PENDING
    output: str | None = None
    attempts: int = 0
    error: str | None = None
    seconds: float | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "ImageRecord":
        known = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        known["metrics"] = {k: v for k, v in (known.get("metrics") or {}).items() if k != "name"}
        return cls(**known)


# -- reading the input -----------------------------------------------------------------------


def _is_image(path: str) -> bool:
    return posixpath.splitext(path)[1].lower() in IMAGE_SUFFIXES


def _strip_suffix(path: str) -> str:
    return posixpath.splitext(path)[0]


def _folder_records(src: Location) -> list[ImageRecord]:
    files = [p for p in src.fs.find(src.root) if _is_image(p)]
    records = []
    for path in sorted(files):
        rel = posixpath.relpath(path, src.root)
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        folder = posixpath.dirname(rel)
        records.append(ImageRecord(key=_strip_suffix(rel), image=src.fs.unstrip_protocol(path) if not src.is_local else path,
                                   group=folder or None))
    if not records:
        raise InputError(f"{src.url} holds no images", f"put files ending in {', '.join(sorted(IMAGE_SUFFIXES))} there")
    return records


def _table_rows(src: Location) -> list[dict[str, Any]]:
    """The rows of a manifest file as dicts."""
    suffix = posixpath.splitext(src.root)[1].lower()
    data = src.fs.cat_file(src.root)
    if suffix == ".parquet":
        pq = parquet_module()
        if pq is None:
            raise UsageError(f"{src.url} is Parquet but pyarrow is not installed", f"{extra_command('ray')} (or pyarrow)")
        return pq.read_table(io.BytesIO(data)).to_pylist()
    text = data.decode("utf-8-sig")
    if suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"manifest {src.url} line {n} is not JSON: {exc}", "write one JSON object per line") from None
    return rows


def _manifest_records(src: Location, group_by: str | None) -> list[ImageRecord]:
    if posixpath.splitext(src.root)[1].lower() not in (".jsonl", ".csv", ".parquet"):
        raise UsageError(f"input {src.url} is neither a folder nor a manifest", "pass a folder of images or a .jsonl/.csv/.parquet manifest")
    rows = _table_rows(src)
    if not rows:
        raise InputError(f"manifest {src.url} lists no images", "add rows with an 'image' column")
    base = posixpath.dirname(src.root)
    records = []
    for n, row in enumerate(rows, 1):
        image = row.get("image")
        if not image:
            raise InputError(f"manifest {src.url} row {n} has no 'image'", "give every row an 'image' path or URL")
        image = str(image)
        if "://" not in image and not posixpath.isabs(image):
            image = posixpath.join(base, image)
            image = src.fs.unstrip_protocol(image) if not src.is_local else image
        key = str(row.get("name") or _strip_suffix(posixpath.basename(image)))
        if group_by is not None and group_by not in row:
            raise UsageError(f"manifest {src.url} has no column '{group_by}'", f"columns: {', '.join(sorted(row))}")
        group = row.get(group_by or "group")
        records.append(ImageRecord(key=key, image=image, group=str(group) if group not in (None, "") else None))
    return records


def collect_images(source: str, group_by: str | None = None) -> list[ImageRecord]:
    """The images of ``source`` (a folder or a manifest; local or an fsspec URL), each with
    its key and its group (sub-folder, or the ``group_by`` column, default ``group``).

    Raises InputError for a missing source, an empty one, or two images with one key.
    """
    src = Location.of(source)
    if not src.fs.exists(src.root):
        raise InputError(f"input {source} does not exist", "pass a folder of images or a manifest file")
    if src.fs.isdir(src.root):
        if group_by is not None:
            raise UsageError("--group-by names a manifest column, but the input is a folder", "group a folder by its sub-folders (the default)")
        records = _folder_records(src)
    else:
        records = _manifest_records(src, group_by)
    seen: dict[str, str] = {}
    for r in records:
        if r.key in seen:
            raise InputError(f"images {seen[r.key]} and {r.image} have the same key '{r.key}'",
                             "rename one of them (or give the manifest a unique 'name' column)")
        seen[r.key] = r.image
    return records


# -- grouping into tasks ---------------------------------------------------------------------


def folder_name(task: str) -> str:
    """The flat folder name of a task id under ``OUT/fits/`` (no nesting, so no task's
    folder lies inside another's)."""
    return _SAFE.sub("_", task.replace("/", "__")).lstrip(".") or "_"


def assign_tasks(records: Sequence[ImageRecord], shared_identity: bool) -> dict[str, list[ImageRecord]]:
    """``{task id: its records}``: one task per image, or with ``shared_identity`` one per
    group (images without a group are fitted alone). Sets each record's ``task``.

    Raises InputError when two tasks would write one folder, or when a group holds two
    images with the same file name (their result folders would clash).
    """
    tasks: dict[str, list[ImageRecord]] = {}
    for r in records:
        r.task = r.group if shared_identity and r.group is not None else r.key
        tasks.setdefault(r.task, []).append(r)
    folders: dict[str, str] = {}
    for task, members in tasks.items():
        folder = folder_name(task)
        if folders.setdefault(folder, task) != task:
            raise InputError(f"tasks '{folders[folder]}' and '{task}' would both write fits/{folder}",
                             "rename one of the images or groups")
        names = [fit_name(r) for r in members]
        if len(set(names)) != len(names):
            raise InputError(f"group '{task}' holds two images named {sorted(n for n in names if names.count(n) > 1)[0]}",
                             "give the images of one group distinct file names")
    return tasks


def fit_name(record: ImageRecord) -> str:
    """The image's name inside its task (its result sub-folder)."""
    return folder_name(posixpath.basename(record.key))


# -- the run's manifest ----------------------------------------------------------------------


def parquet_module() -> Any | None:
    """``pyarrow.parquet`` when pyarrow is installed and importable, else None."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    return pq


def manifest_name(fmt: str) -> str:
    if fmt not in MANIFEST_FORMATS:
        raise UsageError(f"manifest format '{fmt}' is not known", f"use one of {', '.join(MANIFEST_FORMATS)}")
    if fmt == "parquet" and parquet_module() is None:
        raise UsageError("a Parquet manifest needs pyarrow", f"{extra_command('ray')} (or pyarrow), or use --manifest-format jsonl")
    return f"manifest.{fmt}"


def write_manifest(out: Location, records: Iterable[ImageRecord], fmt: str = "jsonl") -> str:
    """Atomically write the records to ``OUT/manifest.<fmt>``; returns the relative path."""
    name = manifest_name(fmt)
    rows = [r.to_dict() for r in records]
    if fmt == "parquet":
        import pyarrow as pa

        for row in rows:  # a struct column needs one key set: JSON keeps the metrics as written
            row["metrics"] = json.dumps(row["metrics"])
        buffer = io.BytesIO()
        parquet_module().write_table(pa.Table.from_pylist(rows), buffer)
        data = buffer.getvalue()
    else:
        data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    out.write_bytes(name, data)
    return name


def read_manifest(out: Location) -> list[ImageRecord]:
    """The records of the manifest in ``out`` (JSONL or Parquet), or ``[]`` when there is none."""
    for fmt in MANIFEST_FORMATS:
        name = f"manifest.{fmt}"
        if not out.exists(name):
            continue
        if fmt == "parquet":
            pq = parquet_module()
            if pq is None:
                raise UsageError(f"{out.url}/{name} is Parquet but pyarrow is not installed", extra_command("ray"))
            rows = pq.read_table(io.BytesIO(out.read_bytes(name))).to_pylist()
            for row in rows:
                row["metrics"] = json.loads(row["metrics"] or "{}")
        else:
            try:
                rows = [json.loads(line) for line in out.read_bytes(name).decode().splitlines() if line.strip()]
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"manifest {out.url}/{name} is damaged: {exc}", "delete it to start the run again") from None
        return [ImageRecord.from_dict(row) for row in rows]
    return []
