"""NextFace's naming convention for plugin distributions, shared by the scaffold and the
install hints of the registry (so the core needs no table of its plugins).

For a ``NAME`` of kind ``KIND`` with prefix ``P`` (:data:`PREFIXES`): the distribution is
``nextface-P-NAME`` (underscores as dashes), the module ``nextface_P_NAME`` and the entry
point (also the config table ``[plugins.P_NAME]``) ``P_NAME``.
"""

from __future__ import annotations

#: the prefix of distribution, module and entry-point names for each plugin kind
PREFIXES: dict[str, str] = {"renderer": "render", "detector": "landmarks", "model": "model", "loss": "loss"}


def distribution_name(kind: str, name: str) -> str:
    """The conventional distribution of ``kind`` ``name`` (``renderer``, ``mitsuba`` → ``nextface-render-mitsuba``)."""
    return f"nextface-{PREFIXES.get(kind, kind)}-{name.replace('_', '-')}"


def entry_point_name(kind: str, name: str) -> str:
    """The conventional entry point and config table of ``kind`` ``name`` (→ ``render_mitsuba``)."""
    return f"{PREFIXES.get(kind, kind)}_{name}"


def module_name(kind: str, name: str) -> str:
    """The conventional import name of ``kind`` ``name`` (→ ``nextface_render_mitsuba``)."""
    return f"nextface_{entry_point_name(kind, name)}"
