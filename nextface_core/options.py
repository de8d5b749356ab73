"""Plugin options, declared once as a frozen dataclass and checked by the core.

A plugin passes its options class to ``register(name, factory, options=MyOptions)``; the
registry reads the config table ``[plugins.<entry point>]``, checks it against the class
(unknown keys, types, ranges, choices: the same rules and messages as the core config) and
calls ``factory(config, options)`` with the checked instance. ``nextface plugins list``
shows the options with their defaults and help, and the contract kit checks the class.

Declare each field with :func:`option`::

    @dataclass(frozen=True)
    class MyOptions:
        samples: int = option(4, "rays per pixel", min=1)
        mode: str = option("fast", "quality preset", choices=("fast", "best"))

Field types: ``bool``, ``int``, ``float``, ``str``, or a tuple of them, fixed length
(``tuple[float, float, float]``) or any length (``tuple[int, ...]``), written as a TOML array.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Mapping

from .config import check_value
from .errors import ConfigError

#: the scalar types an option may have (alone or as the items of a tuple)
SCALARS = (bool, int, float, str)


def option(
    default: Any,
    help: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A dataclass field of an options class: its ``default``, one line of ``help``, an
    inclusive ``min``/``max`` or the allowed ``choices`` (for a tuple: of every item)."""
    rule = ("choices", *choices) if choices else ((min, max) if min is not None or max is not None else None)
    return dataclasses.field(default=default, metadata={"help": help, "rule": rule})


@dataclass(frozen=True)
class OptionInfo:
    """One option as ``nextface plugins list`` shows it."""

    name: str
    type: str
    default: Any
    help: str
    rule: tuple | None
    item: type | None = None  # for tuple[X, ...] (any length): X; else None

    def describe(self) -> str:
        """``name (type, default D[, rule]): help`` on one line."""
        rule = ""
        if self.rule and self.rule[0] == "choices":
            rule = f", one of {list(self.rule[1:])}"
        elif self.rule:
            lo, hi = self.rule
            rule = f", >= {lo}" if hi is None else (f", <= {hi}" if lo is None else f", {lo}..{hi}")
        return f"{self.name} ({self.type}, default {self.default!r}{rule}){': ' + self.help if self.help else ''}"


def _type_name(kind: Any) -> str:
    return str(kind).replace("typing.", "") if typing.get_origin(kind) else kind.__name__


def describe_options(cls: type) -> list[OptionInfo]:
    """The options of ``cls`` in declaration order; raises ``TypeError`` for a class that is
    not an options class (not a dataclass, a field without a default, an unsupported type)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"options must be a dataclass, got {cls!r}")
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        items = typing.get_args(kind) if typing.get_origin(kind) is tuple else (kind,)
        variable = len(items) == 2 and items[1] is Ellipsis
        if not items or any(item not in SCALARS for item in (items[:1] if variable else items)):
            raise TypeError(f"option {cls.__name__}.{f.name} has type {kind}; use bool, int, float, str or a tuple of them")
        if f.default is dataclasses.MISSING:
            raise TypeError(f"option {cls.__name__}.{f.name} has no default; every option needs one")
        item = items[0] if variable else None
        out.append(OptionInfo(f.name, _type_name(kind), f.default, f.metadata.get("help", ""), f.metadata.get("rule"), item))
    return out


def parse_options(cls: type, table: Mapping[str, Any], table_name: str, source: str = "config") -> Any:
    """An instance of the options class ``cls`` from the config table ``[plugins.<table_name>]``.

    Unknown keys, values of the wrong type, out of range or not among the choices raise
    :class:`ConfigError` naming ``source`` and the key, as the core config does.
    """
    known = {info.name: info for info in describe_options(cls)}
    values = {}
    for key, value in table.items():
        dotted = f"plugins.{table_name}.{key}"
        if key not in known:
            raise ConfigError(f"{source}: unknown key {dotted}", f"keys of [plugins.{table_name}]: {', '.join(sorted(known))}")
        info = known[key]
        default, rule = info.default, info.rule
        if isinstance(default, tuple):
            size = "" if info.item else f" of {len(default)} values"
            if not isinstance(value, (list, tuple)) or (info.item is None and len(value) != len(default)):
                raise ConfigError(f"{source}: {dotted} must be a list{size}, got {value!r}", f"write e.g. {key} = {list(default)}")
            # items are checked against the type of the default's items (for tuple[X, ...]: X)
            models = [info.item() for _ in value] if info.item else list(default)
            values[key] = tuple(check_value(f"{dotted}[{i}]", d, v, source, rule) for i, (d, v) in enumerate(zip(models, value)))
        else:
            values[key] = check_value(dotted, default, value, source, rule)
    return cls(**values)


__all__ = ["OptionInfo", "describe_options", "option", "parse_options"]
