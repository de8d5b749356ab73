"""``nextface``: the console-script entry point. It assembles the commands and runs the app.

The app and its groups live in :mod:`nextface_cli.app`; each ``*_cmd`` module attaches its
commands to them when imported here. Errors derived from
:class:`nextface_core.errors.NextFaceError` print one line (and a fix) and exit with their
code; anything else is an internal error (exit 70) whose traceback shows only with ``--debug``.
"""

from __future__ import annotations

import errno
import sys

import typer

from nextface_core.errors import EXIT_INTERNAL, NextFaceError
from nextface_core.files import output_error

from . import config_cmd, dataset_cmd, fit_cmd, landmarks_cmd, model_cmd, plugins_cmd, report_cmd, track_cmd
from .app import app, state

#: the command modules, each attaching its commands to the app on import
COMMANDS = (fit_cmd, landmarks_cmd, model_cmd, dataset_cmd, plugins_cmd, report_cmd, track_cmd, config_cmd)


def main() -> None:
    """Console-script entry: run the app, turning NextFace errors into one line and an exit code.

    Click's own usage errors exit 2 through its standalone mode; NextFace errors exit with
    their code; anything else is an internal error (70).
    """
    try:
        try:
            app()
        except OSError as exc:  # a writer outside nextface_core.files hit a full or read-only disk
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) and not state["debug"]:
                raise output_error(exc.filename or "an output", exc) from exc
            raise
    except NextFaceError as exc:
        if state["debug"]:
            raise
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"fix: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if state["debug"]:
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
