"""The pluggy project every plugin layer module shares: its name, the ``hookimpl`` marker and
:class:`Availability`, the one type a plugin's ``check`` returns.

This module imports nothing of NextFace, so the hook specs, the registry, the built-in
plugins and third-party plugins can all import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import pluggy

#: pluggy project name and entry-point group of NextFace plugins
PROJECT = "nextface"

#: marks a plugin's hook implementations (``@hookimpl def nextface_register_renderers(register): ...``)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run on this machine (``ok``), with a short human explanation."""

    ok: bool
    detail: str = ""


__all__ = ["PROJECT", "Availability", "hookimpl"]
