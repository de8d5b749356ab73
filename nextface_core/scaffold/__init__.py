"""``nextface plugins new``: scaffold a plugin distribution that installs, is listed, and
passes its contract tests out of the box.

Naming conventions (:mod:`nextface_core.naming`, the same as the first-party plugins): for
``NAME`` of kind ``KIND`` with prefix ``P`` (``render``, ``landmarks``, ``model`` or ``loss``)

- the registered name, what users select (``--renderer NAME``): ``NAME``;
- the distribution: ``nextface-P-NAME`` (folder of the same name), module ``nextface_P_NAME``;
- the entry point in group ``nextface`` and the config table: ``P_NAME`` (``[plugins.P_NAME]``).

The files come from ``templates/`` (package data): ``common/`` for every kind, and one
folder per kind with the module and its test; ``%`` in a template's file name stands for
a folder separator. ``$name``-style placeholders are filled with
:class:`string.Template`, so the templates are ordinary Python with ``$`` only there.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import UsageError
from ..naming import PREFIXES, distribution_name, entry_point_name, module_name
from ..plugins import KIND_HOOKS

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class PluginNames:
    """Every name derived from ``name`` and ``kind`` (see the module docstring)."""

    name: str
    kind: str
    distribution: str
    module: str
    entry_point: str
    class_prefix: str

    @classmethod
    def of(cls, name: str, kind: str) -> "PluginNames":
        if kind not in PREFIXES:
            raise UsageError(f"unknown plugin kind {kind!r}", f"use one of {', '.join(PREFIXES)}")
        if not NAME_PATTERN.match(name):
            raise UsageError(
                f"plugin name {name!r} is not a valid name",
                "use lower-case letters, digits and underscores, starting with a letter (e.g. toon or my_fan)",
            )
        return cls(
            name=name,
            kind=kind,
            distribution=distribution_name(kind, name),
            module=module_name(kind, name),
            entry_point=entry_point_name(kind, name),
            class_prefix="".join(part.capitalize() for part in name.split("_")),
        )

    def substitutions(self) -> dict[str, str]:
        return {
            "name": self.name,
            "kind": self.kind,
            "distribution": self.distribution,
            "module": self.module,
            "entry_point": self.entry_point,
            "Class": self.class_prefix,
            "hook": KIND_HOOKS[self.kind],
            "core_requirement": core_requirement(),
        }


def core_requirement() -> str:
    """The core versions a new plugin admits: this minor release line (0.x breaks between minors)."""
    from .. import __version__

    major, minor = (int(part) for part in __version__.split(".")[:2])
    return f"nextface>={major}.{minor},<{major}.{minor + 1}"


def _templates(kind: str) -> list[tuple[str, str]]:
    """``(relative path with placeholders, template text)`` for ``kind`` (common files first)."""
    root = resources.files(__package__) / "templates"
    out = []
    for folder in ("common", kind):
        for entry in sorted((root / folder).iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".tmpl"):
                # "tests%test_$entry_point.py.tmpl" → "tests/test_$entry_point.py"
                out.append((entry.name[: -len(".tmpl")].replace("%", "/"), entry.read_text(encoding="utf-8")))
    return out


def create_plugin(name: str, kind: str, out_dir: str | Path = ".") -> Path:
    """Write a new plugin distribution for ``name`` of ``kind`` into ``out_dir/<distribution>``
    and return that folder. An existing non-empty folder is a :class:`UsageError`."""
    names = PluginNames.of(name, kind)
    target = Path(out_dir) / names.distribution
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} already exists and is not empty", "choose another name or -o folder, or remove it")
    subs = names.substitutions()
    for rel, text in _templates(kind):
        path = target / string.Template(rel).substitute(subs)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template(text).substitute(subs), encoding="utf-8")
    return target


__all__ = ["PREFIXES", "PluginNames", "create_plugin"]
