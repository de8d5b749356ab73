"""``OUT/report.html`` of a dataset run: every finished image in one gallery, sortable by
landmark error or PSNR, linking to the page each task's fit wrote (``fits/<task>/<name>/report.html``)."""

from __future__ import annotations

from pathlib import Path

from ..report import REPORT_FILE, GalleryRow, dataset_page, write_fit_report
from .manifest import DONE, FAILED, fit_name, folder_name, read_manifest
from .storage import Location


def write_dataset_report(out: Location, rebuild_fits: bool = False) -> list[Path]:
    """Write the gallery of the run in ``out`` (after rebuilding each task's fit report with
    ``rebuild_fits``, local folders only); returns the pages written."""
    records = read_manifest(out)
    pages: list[Path] = []
    if rebuild_fits and out.is_local:
        for task in sorted({r.task for r in records if r.status == DONE}):
            folder = Path(out.path("fits", folder_name(task)))
            if (folder / "summary.json").is_file():
                pages.append(write_fit_report(folder))
    rows = []
    for r in sorted(records, key=lambda r: r.key):
        if r.status != DONE:
            continue
        base = f"fits/{folder_name(r.task)}/{fit_name(r)}"
        m = r.metrics
        rows.append(GalleryRow(r.key, f"{base}/{REPORT_FILE}", f"{base}/landmarks.png", m.get("landmark_error_px"),
                               m.get("landmark_error_iod_percent"), m.get("psnr_db")))
    facts = [("images", len(records)), ("done", len(rows)), ("failed", sum(r.status == FAILED for r in records))]
    out.write_bytes(REPORT_FILE, dataset_page(rows, facts).encode("utf-8"))
    return [Path(out.path(REPORT_FILE))] + pages
