"""``nextface config show`` (the effective config and where each value came from) and
``nextface config init FILE`` (a commented config to edit)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import typer

from nextface_core.config import DEFAULTS_PATH, Config
from nextface_core.config_sources import ENV_CONFIG, config_file, user_config_path
from nextface_core.errors import UsageError
from nextface_core.files import write_text

from .app import app
from .options import command_config

config_app = typer.Typer(help="Show the effective config, or write one to edit.", no_args_is_help=True)
app.add_typer(config_app, name="config")

_VALUE_LINE = re.compile(r"^(\w+)\s*=")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _notes(config: Config, dotted: str) -> str:
    """What a value means beyond itself (the per-user model folder of an empty model.path)."""
    if dotted == "model.path" and not config.model.path:
        import platformdirs

        return f' ("" = the model plugin\'s folder, {platformdirs.user_data_path("nextface") / config.run.model})'
    return ""


def show_lines(config: Config) -> list[str]:
    """The config as TOML, each value followed by a comment saying where it came from."""
    lines = []
    for section, table in config.data.items():
        if section == "plugins":
            continue
        lines.append(f"[{section}]")
        for key, value in table.items():
            dotted = f"{section}.{key}"
            lines.append(f"{key} = {_toml_value(value)}".ljust(40) + f"# {config.origin(dotted)}{_notes(config, dotted)}")
        lines.append("")
    for name, options in config.data.get("plugins", {}).items():
        lines.append(f"[plugins.{name}]".ljust(40) + f"# {config.origin(f'plugins.{name}')}")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in options.items())
        lines.append("")
    return lines


@config_app.command("show")
def show(
    config: Optional[Path] = typer.Option(
        None, "--config", help=f"TOML config (else ${ENV_CONFIG}, else the user config folder)."
    ),
    renderer: Optional[str] = typer.Option(None, "--renderer", help="As for 'nextface fit'."),
    landmarks: Optional[str] = typer.Option(None, "--landmarks", help="As for 'nextface fit'."),
    model: Optional[str] = typer.Option(None, "--model", help="As for 'nextface fit'."),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="As for 'nextface fit'."),
    device: Optional[str] = typer.Option(None, "--device", help="As for 'nextface fit'."),
    as_json: bool = typer.Option(False, "--json", help="Print {section: {key: {value, origin}}} as JSON."),
) -> None:
    """Print the config a fit would run with, and where each value came from: default, a
    config file, an environment variable (NEXTFACE_<SECTION>_<KEY>) or a command-line option."""
    cfg = command_config(config, renderer=renderer, landmarks=landmarks, model=model, model_path=model_path, device=device)
    path, why = config_file(config)
    if as_json:
        tables = {
            section: {key: {"value": value, "origin": cfg.origin(f"{section}.{key}")} for key, value in table.items()}
            for section, table in cfg.data.items()
            if section != "plugins"
        }
        tables["plugins"] = {
            name: {"value": options, "origin": cfg.origin(f"plugins.{name}")}
            for name, options in cfg.data.get("plugins", {}).items()
        }
        typer.echo(json.dumps({"config_file": str(path) if path else None, "found_by": why or None, "config": tables}, indent=2))
        return
    typer.echo(
        f"# config file: {path} ({why})"
        if path
        else f"# config file: none (looked for --config, ${ENV_CONFIG}, {user_config_path()})"
    )
    typer.echo("\n".join(show_lines(cfg)).rstrip())


def commented_defaults() -> str:
    """``default_config.toml`` with every value commented out, under a header saying how to use it."""
    text = DEFAULTS_PATH.read_text(encoding="utf-8")
    body = text[text.index("\n[") + 1 :]  # drop the defaults file's own header
    header = (
        "# NextFace config, written by `nextface config init`. Every key is listed at its default\n"
        "# value, commented out: uncomment and change the ones you want; the others follow the\n"
        "# defaults of the installed version. Unknown keys and bad values are errors.\n"
        f"# NextFace reads it with --config FILE, from ${ENV_CONFIG}=FILE, or as {user_config_path()}.\n"
        "# Check the result with `nextface config show --config FILE`.\n"
        "# Third-party plugins read their own options from tables named [plugins.<name>].\n\n"
    )
    lines = [f"# {line}" if _VALUE_LINE.match(line) else line for line in body.splitlines()]
    return header + "\n".join(lines) + "\n"


@config_app.command("init")
def init(
    file: Path = typer.Argument(..., help="Where to write the config (e.g. nextface.toml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented config listing every key at its default, ready to edit."""
    if file.exists() and not force:
        raise UsageError(f"{file} already exists", "choose another name, or pass --force to overwrite it")
    write_text(file, commented_defaults())
    typer.echo(f"wrote {file}; edit it, then: nextface config show --config {file}")
