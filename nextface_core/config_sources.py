"""Where a command's effective config comes from, in order of precedence (last wins):

1. the defaults (``default_config.toml``);
2. one config file: ``--config FILE``, else ``$NEXTFACE_CONFIG``, else ``config.toml`` in the
   per-user config folder (platformdirs: ``~/.config/nextface/`` on Linux) when it exists;
3. environment variables ``NEXTFACE_<SECTION>_<KEY>`` (``NEXTFACE_RUN_DEVICE=cpu``,
   ``NEXTFACE_STAGE2_ITERATIONS=50``), values written as in TOML (a bare word is a string);
4. command-line options (``--renderer``, ``--model-path``, ...).

:meth:`Config.origin <nextface_core.config.Config.origin>` tells which one set each value.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping

from .config import Config, load_config
from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_CONFIG = "NEXTFACE_CONFIG"
ENV_PREFIX = "NEXTFACE_"


def user_config_path() -> Path:
    """``config.toml`` in the per-user config folder (it need not exist)."""
    import platformdirs

    return platformdirs.user_config_path("nextface") / "config.toml"


def config_file(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> tuple[Path | None, str]:
    """The config file a command reads and why: ``(path, "--config" | ENV_CONFIG | "user
    config folder")``, or ``(None, "")`` when there is none."""
    env = os.environ if env is None else env
    if explicit is not None:
        return Path(explicit), "--config"
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]), ENV_CONFIG
    user = user_config_path()
    return (user, "user config folder") if user.is_file() else (None, "")


def _env_value(text: str) -> Any:
    """A TOML scalar (``50``, ``0.5``, ``true``, ``"cpu"``) or, failing that, the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def env_overrides(env: Mapping[str, str] | None = None) -> dict[str, tuple[Any, str]]:
    """``{"section.key": (value, variable)}`` from ``NEXTFACE_<SECTION>_<KEY>`` variables.

    Only variables naming a config section count (``NEXTFACE_PLUGINS`` and the like are other
    settings); a known section with an unknown key is an error naming the variable.
    """
    env = os.environ if env is None else env
    defaults = load_config().as_dict()
    found: dict[str, tuple[Any, str]] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in defaults or not key:
            continue
        if key not in defaults[section]:
            raise ConfigError(
                f"environment variable {name}: [{section}] has no key {key}",
                f"keys of [{section}]: {', '.join(sorted(defaults[section]))}; or unset {name}",
            )
        found[f"{section}.{key}"] = (_env_value(text), name)
    return found


def effective_config(
    explicit: str | Path | None,
    options: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    fallback: Mapping[str, Any] | None = None,
) -> Config:
    """The config a command runs with: defaults, the discovered file, the environment, then
    ``{"section.key": value}`` options (None: not given), each value's origin recorded.
    ``fallback``: overrides of the defaults taken when no config file is found (the demo's
    quicker settings)."""
    path, why = config_file(explicit, env)
    config = load_config(path, overrides=None if path is not None else fallback)
    if path is not None and why != "--config":
        config = Config(config.data, {k: f"{v} (from {why})" for k, v in config.origins.items()})
    for dotted, (value, variable) in sorted(env_overrides(env).items()):
        config = config.with_overrides({dotted: value}, origin=f"environment {variable}")
    given = {k: v for k, v in (options or {}).items() if v is not None}
    return config.with_overrides(given) if given else config


__all__ = ["ENV_CONFIG", "config_file", "effective_config", "env_overrides", "user_config_path"]
