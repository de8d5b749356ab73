"""``nextface landmarks``: detect landmarks and write them in the file detector's format."""

from __future__ import annotations

from .main import _not_yet, app


@app.command()
def landmarks() -> None:
    """Detect landmarks on an image or a folder and write them to a file."""
    _not_yet("landmarks", "arrives with the landmark-detectors issue")
