"""What the fitting commands share: their common options as config overrides, and the stage check."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from nextface_core.config import Config
from nextface_core.config_sources import effective_config
from nextface_core.errors import UsageError
from nextface_core.plugins import PluginRegistry

#: command-line option → config key it overrides
OPTION_KEYS = {
    "renderer": "run.renderer",
    "landmarks": "run.landmarks",
    "model": "run.model",
    "model_path": "model.path",
    "device": "run.device",
    "landmarks_file": "landmarks.file",
    "skip_no_face": "run.skip_no_face",
    "keyframes": "track.keyframes",
    "resolution": "track.resolution",
    "mesh_units": "output.mesh_units",
}


def command_config(config: Path | None, **options: Any) -> Config:
    """The effective config (defaults, the discovered config file, ``NEXTFACE_*`` variables)
    with the options given on the command line as overrides (None: not given); paths become
    absolute strings. The options tables of the installed plugins are checked here too,
    before any work starts."""
    overrides = {OPTION_KEYS[k]: str(v.resolve()) if isinstance(v, Path) else v for k, v in options.items() if v is not None}
    loaded = effective_config(config, overrides)
    PluginRegistry().check_options(loaded)
    return loaded


def require_plugins(cfg: Config, kinds: Iterable[str] = ("renderer", "detector", "model")) -> None:
    """Stop before any work when a plugin the command will use is not installed (one error,
    one pip command for all of them)."""
    from nextface_core.install import require_plugins as require

    names = {"renderer": cfg.run.renderer, "detector": cfg.run.landmarks, "model": cfg.run.model}
    require(PluginRegistry(), [(kind, names[kind]) for kind in kinds])


def check_stages(stages: Iterable[int]) -> None:
    """Refuse a ``--skip-stage`` value that is not a stage number."""
    bad = [s for s in stages if s not in (1, 2, 3)]
    if bad:
        raise UsageError(f"--skip-stage {bad[0]} is not a stage", "stages are 1, 2 and 3")
