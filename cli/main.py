"""``nextface``: the command-line entry point (Typer).

Errors derived from :class:`nextface_core.errors.NextFaceError` print one line (and a fix)
and exit with their code; anything else is an internal error (exit 70) whose traceback
shows only with ``--debug``.
"""

from __future__ import annotations

import errno
import json
import sys
from typing import Optional

import typer

from nextface_core import __version__, logs
from nextface_core.errors import EXIT_INTERNAL, NextFaceError
from nextface_core.files import output_error
from nextface_core.install import not_installed
from nextface_core.plugins import PluginRegistry

app = typer.Typer(
    help="NextFace: fit a 3D morphable face model to photographs by differentiable rendering.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)
plugins_app = typer.Typer(help="List and inspect installed plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
model_app = typer.Typer(help="Inspect morphable models.", no_args_is_help=True)
app.add_typer(model_app, name="model")

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nextface {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Also show info messages and the native libraries' own logs."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Show only errors (no warnings, no progress)."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug
    logs.configure(logs.QUIET if quiet else logs.VERBOSE if verbose else logs.NORMAL)


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
    for b in broken:
        typer.echo(f"{b['plugin']}  ({b['distribution'] or '?'} {b['version'] or ''})  BROKEN: {b['error']}")
    for a in absent:
        typer.echo(f"{a['distribution']}  NOT INSTALLED ({a['kind']} {a['name']}): {a['install']}")


def _not_yet(command: str, issue: str) -> None:
    typer.echo(f"error: 'nextface {command}' is not implemented yet ({issue})", err=True)
    raise typer.Exit(code=4)


# Command modules attach themselves to `app` / `model_app` on import.
from . import fit_cmd, landmarks_cmd, model_cmd  # noqa: E402,F401
from . import dataset_cmd  # noqa: E402,F401
from . import plugins_new  # noqa: E402,F401
from . import track_cmd  # noqa: E402,F401
from . import config_cmd  # noqa: E402,F401


def main() -> None:
    """Console-script entry: run the app, turning NextFace errors into one line and an exit code.

    Click's own usage errors exit 2 through its standalone mode; NextFace errors exit with
    their code; anything else is an internal error (70).
    """
    try:
        try:
            app()
        except OSError as exc:  # a writer outside nextface_core.files hit a full or read-only disk
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) and not _state["debug"]:
                raise output_error(exc.filename or "an output", exc) from exc
            raise
    except NextFaceError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"fix: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
