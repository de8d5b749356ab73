"""``nextface report OUT``: rebuild the report of any NextFace output folder (fit, track or dataset)."""

from __future__ import annotations

from pathlib import Path

from ..dataset.gallery import write_dataset_report
from ..dataset.storage import Location
from ..errors import InputError
from . import REPORT_FILE, _read_json, write_fit_report, write_track_report


def rebuild(root: str | Path) -> list[Path]:
    """Rebuild the report of any NextFace output folder (fit, track or dataset); returns the
    pages written."""
    root = Path(root)
    if (root / "summary.json").is_file():
        write_fit_report(root)
        return [root / REPORT_FILE] + [root / i["name"] / REPORT_FILE for i in _read_json(root / "summary.json", "fit")["images"]]
    if (root / "track.json").is_file():
        return [write_track_report(root)]
    if (root / "dataset.json").is_file():
        return write_dataset_report(Location.of(root), rebuild_fits=True)
    raise InputError(f"{root} is not a NextFace output folder (no summary.json, track.json or dataset.json)",
                     "pass a folder written by 'nextface fit', 'nextface track' or 'nextface fit-dataset'")

