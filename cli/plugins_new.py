"""``nextface plugins new NAME --kind renderer|detector|model|loss [-o DIR]``."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from .main import plugins_app


class Kind(str, enum.Enum):
    """What the new plugin provides."""

    renderer = "renderer"
    detector = "detector"
    model = "model"
    loss = "loss"


@plugins_app.command("new")
def plugins_new(
    name: str = typer.Argument(..., help="Registered name users select, e.g. 'toon' for --renderer toon."),
    kind: Kind = typer.Option(..., "--kind", help="What the plugin provides."),
    out: Path = typer.Option(Path("."), "-o", "--out", help="Folder in which the plugin's folder is created."),
) -> None:
    """Scaffold a plugin distribution that installs, is listed and passes its contract tests."""
    from nextface_core.scaffold import PluginNames, create_plugin

    names = PluginNames.of(name, kind.value)
    folder = create_plugin(name, kind.value, out)
    typer.echo(f"created {folder} (distribution {names.distribution}, module {names.module}, entry point {names.entry_point})")
    typer.echo("next steps:")
    typer.echo(f"  pip install -e {folder}")
    typer.echo(f"  nextface plugins list            # {names.entry_point}: {kind.value} {name}")
    typer.echo(f"  python -m pytest -q {folder / 'tests'}")
