"""``nextface report``: rebuild the HTML report of an output folder."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app


@app.command()
def report(out: Path = typer.Argument(..., help="An output folder of 'nextface fit', 'track' or 'fit-dataset'.")) -> None:
    """Rebuild report.html (and each image's page) from the files of an output folder."""
    from nextface_core.report.rebuild import rebuild

    pages = rebuild(out)
    typer.echo(f"wrote {pages[0]}" + (f" and {len(pages) - 1} more pages" if len(pages) > 1 else ""))
