"""``nextface plugins list`` and ``nextface plugins new NAME --kind renderer|detector|model|loss [-o DIR]``."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import typer

from nextface_core.install import not_installed
from nextface_core.plugins import PluginRegistry

from .app import plugins_app


@plugins_app.command("list")
def plugins_list(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show each plugin's distribution, version, hooks, registered names and availability."""
    registry = PluginRegistry()
    rows = []
    for info in registry.plugins():
        rows.append(
            {
                "plugin": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "hooks": info.hooks,
                "registered": [
                    {
                        "kind": r.kind,
                        "name": r.name,
                        "description": r.description,
                        "available": (a := r.availability()).ok,
                        "detail": a.detail,
                        "options_table": f"plugins.{r.plugin}" if r.options is not None else None,
                        "options": [
                            {"name": o.name, "type": o.type, "default": o.default, "help": o.help, "text": o.describe()}
                            for o in r.option_infos()
                        ],
                    }
                    for r in info.registrations
                ],
            }
        )
    broken = [
        {"plugin": b.name, "distribution": b.distribution, "version": b.version, "error": b.error}
        for b in registry.broken
    ]
    absent = not_installed(registry)
    if as_json:
        typer.echo(json.dumps({"plugins": rows, "broken": broken, "not_installed": absent}, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['plugin']}  ({row['distribution'] or 'not from a distribution'} {row['version'] or ''})".rstrip())
        typer.echo(f"  hooks: {', '.join(row['hooks']) or 'none'}")
        for reg in row["registered"]:
            state = "ok" if reg["available"] else "unavailable"
            typer.echo(f"  {reg['kind']:<9} {reg['name']:<12} [{state}] {reg['detail']}")
            if reg["options"]:
                typer.echo(f"    options [{reg['options_table']}]:")
            for opt in reg["options"]:
                typer.echo(f"      {opt['text']}")
    for b in broken:
        typer.echo(f"{b['plugin']}  ({b['distribution'] or '?'} {b['version'] or ''})  BROKEN: {b['error']}")
    for a in absent:
        typer.echo(f"{a['distribution']}  NOT INSTALLED ({a['kind']} {a['name']}): {a['install']}")
    if not rows and not broken:
        typer.echo("no plugins installed (pip install nextface-render-vertex nextface-model-basel ...)")


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
