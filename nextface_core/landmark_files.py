"""Landmark files (JSON or CSV) and the ``file`` detector that reads them.

Users supply landmarks for annotated data or synthetic tests, and ``nextface landmarks``
writes detections in the same formats so they can be inspected, corrected and fed back
with ``--landmarks file``. Points are pixels (x right, y down, pixel centres at
integer + 0.5) of the image named by each entry.

JSON (``.json``)::

    {"format": "nextface-landmarks", "version": 1,
     "images": {
       "face.jpg": {"width": 512, "height": 512,            # optional
                    "landmarks": {"ibug68": {"points": [[x, y], ...],       # L pairs
                                             "confidence": [c, ...]}}},     # optional, [0, 1]
       "empty.jpg": {"landmarks": {}}}}                      # no face in that image

CSV (``.csv``), one row per point; ``confidence``, ``width`` and ``height`` columns are
optional (confidence defaults to 1)::

    image,schema,index,x,y,confidence,width,height
    face.jpg,ibug68,0,101.5,230.25,1,512,512

Each (image, schema) must list indices ``0..L-1`` once; a registered schema
(:mod:`nextface_core.landmark_schemas`: ``ibug68`` 68 points, ``mediapipe478`` 478) has its
count; other schema names are accepted with any consistent count. Bad files
raise :class:`~nextface_core.errors.InputError` naming the key (JSON) or line (CSV).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .errors import InputError, UsageError
from .files import read_user_text, write_text
from .landmark_schemas import point_count
from .landmarks import LandmarkSet

log = logging.getLogger(__name__)

FORMAT_NAME = "nextface-landmarks"
FORMAT_VERSION = 1
CSV_REQUIRED = ("image", "schema", "index", "x", "y")
CSV_COLUMNS = ("image", "schema", "index", "x", "y", "confidence", "width", "height")
_SIZE_TOLERANCE = 0.01  # relative x/y scale mismatch allowed when rescaling to an image


@dataclass
class LandmarkFile:
    """What a landmark file holds: ``sets`` per schema over the file's images (in file
    order; ``found`` False where an image lacks that schema), and the ``sizes``
    ``(width, height)`` of the images whose entry recorded one."""

    sets: dict[str, LandmarkSet]
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)


# -- reading ------------------------------------------------------------------------------


def _bad(path: Path, where: str, problem: str, hint: str = "") -> InputError:
    return InputError(f"landmark file {path}: {where}: {problem}", hint or "fix that entry, or regenerate the file")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_count(path: Path, where: str, schema: str, count: int, expected: int | None) -> None:
    if count == 0:
        raise _bad(path, where, "has no points")
    if expected is not None and count != expected:
        raise _bad(path, where, f"has {count} points, but schema '{schema}' has {expected}")


def _json_points(path: Path, key: str, schema: str, entry: Any) -> tuple[np.ndarray, np.ndarray]:
    """One JSON ``{"points": [[x,y],...], "confidence": [...]}`` → ``[L,2]``, ``[L]``."""
    if not isinstance(entry, dict):
        raise _bad(path, key, "must be an object with 'points' (and optionally 'confidence')")
    unknown = set(entry) - {"points", "confidence"}
    if unknown:
        raise _bad(path, f"{key}.{sorted(unknown)[0]}", "unknown key", "keys are 'points' and 'confidence'")
    if "points" not in entry:
        raise _bad(path, f"{key}.points", "is missing")
    points = entry["points"]
    if not isinstance(points, list):
        raise _bad(path, f"{key}.points", "must be a list of [x, y] pairs")
    for i, pair in enumerate(points):
        if not (isinstance(pair, list) and len(pair) == 2 and all(_finite(v) for v in pair)):
            raise _bad(path, f"{key}.points[{i}]", f"must be [x, y] with two finite numbers, got {pair!r}")
    _check_count(path, f"{key}.points", schema, len(points), point_count(schema))
    xy = np.asarray(points, dtype=np.float64).reshape(len(points), 2)
    if "confidence" not in entry:
        return xy, np.ones(len(points))
    conf = entry["confidence"]
    if not isinstance(conf, list) or len(conf) != len(points):
        raise _bad(path, f"{key}.confidence", f"must be a list of {len(points)} numbers, one per point")
    for i, c in enumerate(conf):
        if not (_finite(c) and 0.0 <= c <= 1.0):
            raise _bad(path, f"{key}.confidence[{i}]", f"must be a number in [0, 1], got {c!r}")
    return xy, np.asarray(conf, dtype=np.float64)


def _size(path: Path, key: str, entry: Mapping[str, Any]) -> tuple[int, int] | None:
    if "width" not in entry and "height" not in entry:
        return None
    w, h = entry.get("width"), entry.get("height")
    for name, v in (("width", w), ("height", h)):
        if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            raise _bad(path, f"{key}.{name}", f"must be a positive integer (pixels), got {v!r}", "give both width and height, or neither")
    return int(w), int(h)


def _parse_json(path: Path, text: str) -> tuple[list[str], dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], dict[str, tuple[int, int]]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"landmark file {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            "fix the syntax there",
        ) from None
    if not isinstance(doc, dict):
        raise _bad(path, "top level", "must be an object with an 'images' key")
    if doc.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise _bad(path, "format", f"is {doc['format']!r}, expected {FORMAT_NAME!r}")
    if doc.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise _bad(path, "version", f"is {doc['version']!r}; this NextFace reads version {FORMAT_VERSION}")
    images = doc.get("images")
    if not isinstance(images, dict):
        raise _bad(path, "images", "is missing or not an object of {image name: entry}")
    names: list[str] = []
    groups: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for name, entry in images.items():
        key = f"images.{json.dumps(name)}"
        if not isinstance(entry, dict):
            raise _bad(path, key, "must be an object with a 'landmarks' key")
        unknown = set(entry) - {"landmarks", "width", "height"}
        if unknown:
            raise _bad(path, f"{key}.{sorted(unknown)[0]}", "unknown key", "keys are 'landmarks', 'width' and 'height'")
        marks = entry.get("landmarks")
        if not isinstance(marks, dict):
            raise _bad(path, f"{key}.landmarks", "is missing or not an object of {schema: points}")
        size = _size(path, key, entry)
        if size is not None:
            sizes[name] = size
        names.append(name)
        for schema, pts in marks.items():
            groups[(name, schema)] = _json_points(path, f"{key}.landmarks.{schema}", schema, pts)
    return names, groups, sizes


def _csv_number(path: Path, line: int, column: str, text: str, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise _bad(path, f"line {line}", f"{column} = {text!r} is not {kind}") from None
    if not math.isfinite(value):
        raise _bad(path, f"line {line}", f"{column} = {text!r} is not finite")
    return value


def _parse_csv(path: Path, text: str) -> tuple[list[str], dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], dict[str, tuple[int, int]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise _bad(path, "line 1", f"the header lacks column(s) {', '.join(missing)}", f"the header is {','.join(CSV_COLUMNS)}")
    rows: dict[tuple[str, str], dict[int, tuple[float, float, float]]] = {}
    first_line: dict[tuple[str, str], int] = {}
    names: dict[str, None] = {}  # insertion-ordered set
    sizes: dict[str, tuple[int, int]] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            raise _bad(path, f"line {line}", f"has more columns than the header's {len(header)}")
        if any(row[c] is None for c in CSV_REQUIRED):
            raise _bad(path, f"line {line}", f"has fewer columns than the header's {len(header)}")
        name, schema = row["image"], row["schema"]
        if not name or not schema:
            raise _bad(path, f"line {line}", "image and schema must not be empty")
        index = int(_csv_number(path, line, "index", row["index"], integer=True))
        expected = point_count(schema)
        if index < 0 or (expected is not None and index >= expected):
            span = f"0..{expected - 1}" if expected else ">= 0"
            raise _bad(path, f"line {line}", f"index {index} is out of range for schema '{schema}' ({span})")
        x = _csv_number(path, line, "x", row["x"])
        y = _csv_number(path, line, "y", row["y"])
        c_text = (row.get("confidence") or "").strip()
        c = _csv_number(path, line, "confidence", c_text) if c_text else 1.0
        if not 0.0 <= c <= 1.0:
            raise _bad(path, f"line {line}", f"confidence = {c_text} is outside [0, 1]")
        w_text, h_text = (row.get("width") or "").strip(), (row.get("height") or "").strip()
        if w_text or h_text:
            size = (int(_csv_number(path, line, "width", w_text, True)), int(_csv_number(path, line, "height", h_text, True)))
            if min(size) <= 0 or sizes.setdefault(name, size) != size:
                raise _bad(path, f"line {line}", f"width,height = {size} is not positive or differs from the image's earlier rows")
        names.setdefault(name, None)
        group = rows.setdefault((name, schema), {})
        first_line.setdefault((name, schema), line)
        if index in group:
            raise _bad(path, f"line {line}", f"duplicate index {index} for image {name!r}, schema '{schema}'")
        group[index] = (x, y, c)
    groups: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for (name, schema), group in rows.items():
        count = point_count(schema) or max(group) + 1
        absent = sorted(set(range(count)) - set(group))
        if absent:
            shown = ", ".join(map(str, absent[:5])) + (" ..." if len(absent) > 5 else "")
            raise _bad(
                path,
                f"line {first_line[(name, schema)]}",
                f"image {name!r}, schema '{schema}' lacks index(es) {shown} (needs 0..{count - 1})",
            )
        values = np.asarray([group[i] for i in range(count)], dtype=np.float64)
        groups[(name, schema)] = (values[:, :2], values[:, 2])
    return list(names), groups, sizes


def read_landmark_file(path: str | Path) -> LandmarkFile:
    """Read a ``.json`` or ``.csv`` landmark file → :class:`LandmarkFile` (see module doc)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise InputError(f"landmark file {path} must end in .json or .csv", "rename it or convert it to one of the two formats")
    text = read_user_text(
        path, "landmark file", InputError, "check the path given in [landmarks] file / --landmarks-file", "utf-8-sig"
    )
    names, groups, sizes = (_parse_json if suffix == ".json" else _parse_csv)(path, text)
    if not groups:
        raise InputError(f"landmark file {path} holds no landmarks", "add at least one image with points")
    counts: dict[str, tuple[int, str]] = {}
    for (name, schema), (xy, _) in groups.items():
        seen = counts.setdefault(schema, (len(xy), name))
        if seen[0] != len(xy):
            raise _bad(path, f"image {name!r}, schema '{schema}'", f"has {len(xy)} points but image {seen[1]!r} has {seen[0]}")
    sets = {}
    for schema, (count, _) in counts.items():
        points = np.zeros((len(names), count, 2))
        confidence = np.zeros((len(names), count))
        found = np.zeros(len(names), dtype=bool)
        for b, name in enumerate(names):
            if (name, schema) in groups:
                points[b], confidence[b] = groups[(name, schema)]
                found[b] = True
        sets[schema] = LandmarkSet(
            schema, torch.from_numpy(points).float(), torch.from_numpy(confidence).float(), torch.from_numpy(found), list(names)
        )
    return LandmarkFile(sets, sizes)


def read_landmarks(path: str | Path) -> dict[str, LandmarkSet]:
    """Read a landmark file → ``{schema: LandmarkSet}`` over the file's images."""
    return read_landmark_file(path).sets


# -- writing ------------------------------------------------------------------------------


def _checked_sets(sets: Mapping[str, LandmarkSet]) -> list[str]:
    if not sets:
        raise ValueError("write_landmarks needs at least one LandmarkSet")
    names: list[str] = []
    for schema, ls in sets.items():
        if ls.schema != schema:
            raise ValueError(f"sets[{schema!r}] holds schema {ls.schema!r}")
        names.extend(n for n in ls.names if n not in names)
    return names


def _rows(sets: Mapping[str, LandmarkSet]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``{image: {schema: ([L,2], [L])}}`` for every found face."""
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for schema, ls in sets.items():
        pts, conf, found = ls.points.detach().cpu().double().numpy(), ls.confidence.detach().cpu().double().numpy(), ls.found.cpu().numpy()
        for b, name in enumerate(ls.names):
            if found[b]:
                out.setdefault(name, {})[schema] = (pts[b], conf[b])
    return out


def _json_text(names: Sequence[str], rows: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], sizes: Mapping[str, tuple[int, int]]) -> str:
    """Readable JSON: one ``[x, y]`` pair per line, so a person can correct a point."""
    out = [f'{{"format": "{FORMAT_NAME}", "version": {FORMAT_VERSION},', ' "images": {']
    for i, name in enumerate(names):
        head = f"  {json.dumps(name)}: {{"
        if name in sizes:
            head += f'"width": {sizes[name][0]}, "height": {sizes[name][1]}, '
        marks = rows.get(name, {})
        if not marks:
            out.append(head + '"landmarks": {}}' + ("," if i < len(names) - 1 else ""))
            continue
        out.append(head + '"landmarks": {')
        for j, (schema, (xy, conf)) in enumerate(marks.items()):
            pts = ",\n".join(f"      [{x:.3f}, {y:.3f}]" for x, y in xy)
            confs = ", ".join(f"{c:.4f}" for c in conf)
            out.append(f"    {json.dumps(schema)}: {{\n     \"points\": [\n{pts}],\n     \"confidence\": [{confs}]}}" + ("," if j < len(marks) - 1 else ""))
        out.append("  }}" + ("," if i < len(names) - 1 else ""))
    out.append(" }}")
    return "\n".join(out) + "\n"


def _csv_text(names: Sequence[str], rows: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], sizes: Mapping[str, tuple[int, int]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name in names:
        w, h = sizes.get(name, ("", ""))
        for schema, (xy, conf) in rows.get(name, {}).items():
            writer.writerows([name, schema, k, f"{x:.3f}", f"{y:.3f}", f"{c:.4f}", w, h] for k, ((x, y), c) in enumerate(zip(xy, conf)))
    return buffer.getvalue()


def write_landmarks(path: str | Path, sets: Mapping[str, LandmarkSet], sizes: Mapping[str, tuple[int, int]] | None = None) -> Path:
    """Write ``{schema: LandmarkSet}`` to ``path`` (``.json`` or ``.csv``, by its ending).

    ``sizes``: optional ``{image name: (width, height)}`` recorded with each image so the
    ``file`` detector can rescale the points to a resized copy. Points are written to
    1/1000 pixel. Images without a face are kept in JSON (empty ``landmarks``) and left
    out of CSV; both read back as ``found=False`` for an image the detector is asked about.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise UsageError(f"landmark output {path} must end in .json or .csv", "choose a .json or .csv file name")
    names = _checked_sets(sets)
    text = (_json_text if suffix == ".json" else _csv_text)(names, _rows(sets), dict(sizes or {}))
    write_text(path, text)
    return path


# -- the detector ---------------------------------------------------------------------------


class FileDetector:
    """The ``file`` detector: serves landmarks from a file instead of detecting them.

    Images are matched by name: the exact name, else a name of the file without folders
    or without the extension (``nextface fit`` names ``photos/a.jpg`` ``a``; ``nextface
    landmarks`` writes ``a.jpg``) when that is unique in the file. An image the file does not mention gets ``found=False``
    (with a log warning). When the file recorded an image's size and the image passed to
    :meth:`detect` has another size of the same aspect ratio (the fit scales large photos
    down), the points are scaled to match; a different aspect ratio is an error.
    """

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        content = read_landmark_file(self.path)
        self.sets = content.sets
        self.sizes = content.sizes
        self._rows = {schema: self._index(ls.names) for schema, ls in self.sets.items()}

    @classmethod
    def from_config(cls, config: Any) -> "FileDetector":
        """Build from ``config.landmarks.file``; an empty setting is a usage error."""
        path = config.landmarks.file
        if not path:
            raise UsageError(
                "--landmarks file needs a landmark file, but [landmarks] file is empty",
                "pass --landmarks-file FILE or set [landmarks] file = \"FILE\" in the config",
            )
        return cls(path)

    @staticmethod
    def _index(names: Sequence[str]) -> dict[str, int]:
        """Row of each full name, plus of each shorter form of it (without folders, without
        the extension, without both) that only one entry has."""
        aliases: dict[str, set[int]] = {}
        for b, n in enumerate(names):
            path = Path(n)
            for alias in {path.name, str(path.with_suffix("")), path.stem}:
                aliases.setdefault(alias, set()).add(b)
        index = {alias: next(iter(rows)) for alias, rows in aliases.items() if len(rows) == 1}
        index.update({n: b for b, n in enumerate(names)})
        return index

    def _row(self, schema: str, name: str) -> int | None:
        rows = self._rows[schema]
        return rows.get(name, rows.get(Path(name).name))

    def _scale(self, name: str, key: str | None, image: np.ndarray) -> np.ndarray:
        """``[2]`` factors mapping the file's pixel coordinates onto ``image``."""
        if key is None or key not in self.sizes:
            return np.ones(2)
        (w0, h0), (h, w) = self.sizes[key], image.shape[:2]
        sx, sy = w / w0, h / h0
        if abs(sx - sy) > _SIZE_TOLERANCE * max(sx, sy):
            raise InputError(
                f"landmarks for {name} in {self.path} were made on a {w0}×{h0} image, but the image is {w}×{h}",
                "regenerate the landmarks for this image (nextface landmarks)",
            )
        return np.array([sx, sy])

    def detect(self, images: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, LandmarkSet]:
        """``{schema: LandmarkSet}`` for ``names`` (one row per image; ``images`` give sizes)."""
        if len(images) != len(names):
            raise ValueError(f"detect got {len(images)} images but {len(names)} names")
        out = {}
        for schema, ls in self.sets.items():
            rows = [self._row(schema, n) for n in names]
            take = torch.tensor([r if r is not None else 0 for r in rows], dtype=torch.long)
            present = torch.tensor([r is not None for r in rows]) & ls.found[take]
            keys = [ls.names[r] if r is not None else None for r in rows]
            scale = torch.from_numpy(np.stack([self._scale(n, k, im) for n, k, im in zip(names, keys, images)])).float()
            points = ls.points[take] * scale[:, None, :] * present[:, None, None]
            confidence = ls.confidence[take] * present[:, None]
            out[schema] = LandmarkSet(schema, points, confidence, present, list(names))
        missing = [n for n in names if all(self._row(s, n) is None for s in self.sets)]
        if missing:
            log.warning("landmark file %s has no entry for %s", self.path, ", ".join(missing))
        return out
