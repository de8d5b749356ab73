"""NextFace plugin: Mitsuba 3 differentiable ray tracer (LLVM on CPU, CUDA on GPU).

Registers renderer ``mitsuba``. Options come from the config table ``[plugins.mitsuba]``:
``shadow_gradients`` (``"unguided"`` default, ``"guided"`` or ``"off"``) and ``envmap_height`` (32).
Mitsuba and Dr.Jit are imported only when a renderer is created or checked.
"""

from __future__ import annotations

from typing import Any

from nextface_core import hookimpl
from nextface_core.errors import ConfigError

from .backend import check

OPTIONS = {"shadow_gradients": str, "envmap_height": int}


def create_renderer(config: Any) -> Any:
    """Factory of renderer ``mitsuba``: a :class:`~nextface_render_mitsuba.renderer.MitsubaRenderer`."""
    from .renderer import MitsubaRenderer

    options = dict(config.plugins.get("mitsuba", {})) if config is not None else {}
    for key, value in options.items():
        if key not in OPTIONS:
            raise ConfigError(f"unknown option [plugins.mitsuba] {key}", f"known options: {', '.join(OPTIONS)}")
        if not isinstance(value, OPTIONS[key]) or isinstance(value, bool):
            raise ConfigError(f"[plugins.mitsuba] {key} must be {OPTIONS[key].__name__}, got {value!r}")
    return MitsubaRenderer(**options)


@hookimpl
def nextface_register_renderers(register) -> None:
    register(
        "mitsuba",
        create_renderer,
        description="Mitsuba 3 differentiable ray tracer (LLVM on CPU, CUDA on GPU).",
        check=check,
    )
