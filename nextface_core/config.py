"""The configuration: packaged TOML defaults, a user TOML file, and CLI overrides.

The defaults live in one place, ``default_config.toml`` beside this module; their types
are the schema. A user file may set any subset; an unknown key, a value of the wrong
type, or one out of range raises :class:`ConfigError` naming the key. Tables
``[plugins.<entry point>]`` hold plugin options; they are kept as written here and checked
by the registry against the options each plugin declares (:mod:`nextface_core.options`).
"""

from __future__ import annotations

import copy
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .files import read_user_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULTS_PATH = Path(__file__).with_name("default_config.toml")

#: value rules beyond the type: (min, max) inclusive, or a tuple of allowed values
RULES: dict[str, tuple] = {
    "run.max_resolution": (64, 8192),
    "run.batch_size": (1, None),
    "run.debug_frequency": (0, None),
    "run.seed": (0, None),
    "model.shape_components": (0, None),
    "model.expression_components": (0, None),
    "model.albedo_components": (0, None),
    "camera.initial_focal": (0.0, None),
    "light.bands": (1, 9),
    "light.envmap_resolution": (8, 4096),
    "texture.resolution": ("choices", 256, 512, 1024, 2048),
    "texture.initial_roughness": (0.0, 1.0),
    "render.samples": (1, None),
    "render.final_samples": (1, None),
    "stage1.iterations": (0, None),
    "stage2.iterations": (0, None),
    "stage3.iterations": (0, None),
    "stage2.learning_rate": (0.0, None),
    "stage3.learning_rate": (0.0, None),
    "stage2.final_learning_rate": (0.0, 1.0),
    "stage2.specular_scale": ("choices", "views", "free", "fixed"),
    "stage3.final_learning_rate": (0.0, 1.0),
    "stage3.pyramid_levels": (1, 12),
    "stage3.bake_steps": (0, 100),
    "stage3.specular_resolution": (1, 4096),
    "stage3.roughness_resolution": (1, 4096),
    "stage3.roughness_min": (0.0, 1.0),
    "stage3.roughness_max": (0.0, 1.0),
    "output.mesh_units": ("choices", "m", "mm"),
}
_NON_NEGATIVE_SECTIONS = ("weights",)
_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


class Section:
    """Read-only attribute access to one table of the config (``config.stage1.iterations``)."""

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config has no key {self._name}.{key}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("config sections are read-only; use Config.with_overrides")

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``data`` holds the merged tables; sections are attributes.
    ``origins`` says where each value that is not a default came from (``"section.key"`` →
    "file PATH", "environment NAME", "option"); see :meth:`origin`."""

    data: Mapping[str, Mapping[str, Any]]
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def origin(self, dotted: str) -> str:
        """Where ``"section.key"`` got its value: "default", "file PATH", "environment NAME" or "option"."""
        return self.origins.get(dotted, "default")

    def plugin_source(self, name: str) -> str:
        """Where the ``[plugins.<name>]`` table came from, as error messages name it: a file
        path, an environment variable, "override" (an option) or "config"."""
        origin = self.origins.get(f"plugins.{name}", "config")
        return {"option": "override"}.get(origin, origin.split(" ", 1)[-1])

    def __getattr__(self, section: str) -> Any:
        if section == "plugins":
            return self.data.get("plugins", {})
        if section in self.data:
            return Section(section, self.data[section])
        raise AttributeError(f"config has no section [{section}]")

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy({k: dict(v) for k, v in self.data.items()})

    def with_overrides(self, overrides: Mapping[str, Any], origin: str = "option") -> "Config":
        """A new config with ``{"section.key": value}`` overrides applied and validated;
        ``origin`` is recorded as their source."""
        data = self.as_dict()
        nested: dict[str, dict[str, Any]] = {}
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, _, key = dotted.partition(".")
            nested.setdefault(section, {})[key] = value
        source = "override" if origin == "option" else origin
        return Config(_merge(data, nested, source=source), {**self.origins, **_origins(nested, origin)})


def _origins(tables: Mapping[str, Any], origin: str) -> dict[str, str]:
    """``{"section.key": origin}`` for every value of ``tables`` (plugin tables: ``plugins.NAME``)."""
    return {f"{section}.{key}": origin for section, table in tables.items() if isinstance(table, dict) for key in table}


def _defaults() -> dict[str, dict[str, Any]]:
    with DEFAULTS_PATH.open("rb") as f:
        return tomllib.load(f)


def _toml(value: Any) -> str:
    """A scalar as it is written in TOML (for hints)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def check_value(dotted: str, default: Any, value: Any, source: str, rule: tuple | None = None) -> Any:
    """``value`` of key ``dotted`` checked against the type of ``default`` and ``rule``
    (``(min, max)`` inclusive, either None for open, or ``("choices", *allowed)``); an int
    where a float is expected becomes a float. Raises :class:`ConfigError` naming the key and
    ``source`` (a file path, or "override"). Plugin options are checked with it too."""
    want = type(default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not want:
        kind = _KINDS.get(want, want.__name__)
        raise ConfigError(
            f"{source}: {dotted} must be {kind}, got {type(value).__name__} {value!r}",
            f"write {kind}, e.g. {dotted} = {_toml(default)}",
        )
    if want is float and not math.isfinite(value):
        raise ConfigError(
            f"{source}: {dotted} = {value!r} is not a finite number", f"write a number, e.g. {dotted} = {_toml(default)}"
        )
    if rule and rule[0] == "choices":
        if value not in rule[1:]:
            raise ConfigError(f"{source}: {dotted} = {value!r} is not allowed", f"use one of {list(rule[1:])}")
    elif rule:
        lo, hi = rule
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise ConfigError(f"{source}: {dotted} = {value!r} is out of range", f"it must be {span}")
    return value


def _merge(base: dict[str, dict[str, Any]], user: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    merged = copy.deepcopy(base)
    for section, table in user.items():
        if section == "plugins":
            bad = [k for k, options in table.items() if not isinstance(options, dict)] if isinstance(table, dict) else []
            if not isinstance(table, dict) or bad:
                where = f"plugins.{bad[0]}" if bad else "[plugins]"
                raise ConfigError(f"{source}: {where} must be a table of plugin options", "write [plugins.NAME] tables")
            merged.setdefault("plugins", {}).update(copy.deepcopy(table))
            continue
        if section not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(f"{source}: unknown section [{section}]", f"known sections: {known}, plugins")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {section} must be a table", f"write it as [{section}]")
        for key, value in table.items():
            dotted = f"{section}.{key}"
            if key not in base[section]:
                known = ", ".join(sorted(base[section]))
                raise ConfigError(f"{source}: unknown key {dotted}", f"keys of [{section}]: {known}")
            rule = RULES.get(dotted) or ((0.0, None) if section in _NON_NEGATIVE_SECTIONS else None)
            merged[section][key] = check_value(dotted, base[section][key], value, source, rule)
    return merged


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file at ``path`` (if any), then ``{"section.key": value}`` overrides."""
    data = _defaults()
    data.setdefault("plugins", {})
    origins: dict[str, str] = {}
    if path is not None:
        path = Path(path)
        text = read_user_text(path, "config file", ConfigError, "check the path given to --config")
        try:
            user = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}", "fix the syntax at that line") from None
        data = _merge(data, user, source=str(path))
        origins = _origins(user, f"file {path}")
    config = Config(data, origins)
    return config.with_overrides(overrides) if overrides else config


def resolve_device(config: Config) -> str:
    """The torch device string ``run.device`` means here ("auto" → cuda if available)."""
    import torch

    device = config.run.device
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"run.device = {device!r} but no CUDA GPU is available", 'use device = "cpu" or "auto"')
        return device
    raise ConfigError(f"run.device = {device!r} is not a device", 'use "auto", "cpu", "cuda" or "cuda:N"')
