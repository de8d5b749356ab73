"""The Typer application of ``nextface`` and its command groups; commands attach to these.

Command modules (``*_cmd.py``) import :data:`app` (or a group) from here and decorate
their functions; :mod:`nextface_cli.main` imports them all and runs the app.
"""

from __future__ import annotations

from typing import Optional

import typer

from nextface_core import __version__, logs

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

#: process-wide flags of the root command (``--debug``; ``-v``/``-q`` configure logging), read by :func:`nextface_cli.main.main`
state = {"debug": False}


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
    state["debug"] = debug
    logs.configure(logs.QUIET if quiet else logs.VERBOSE if verbose else logs.NORMAL)
