"""NextFace plugin: Mitsuba 3 differentiable ray tracer (LLVM on CPU, CUDA on GPU).

Registers renderer ``mitsuba``. Options (:class:`~nextface_render_mitsuba.renderer.MitsubaOptions`)
come from the config table ``[plugins.render_mitsuba]``: ``shadow_gradients`` (``"off"``
default, ``"unguided"`` or ``"guided"``) and ``envmap_height`` (32). Mitsuba and Dr.Jit are
imported only when a renderer is created or checked.
"""

from __future__ import annotations

from typing import Any

from nextface_core import hookimpl

from .backend import check


def create_renderer(config: Any, options: Any) -> Any:
    """Factory of renderer ``mitsuba``: a :class:`~nextface_render_mitsuba.renderer.MitsubaRenderer`."""
    from .renderer import MitsubaRenderer

    return MitsubaRenderer(options.shadow_gradients, options.envmap_height)


@hookimpl
def nextface_register_renderers(register) -> None:
    from .renderer import MitsubaOptions

    register(
        "mitsuba",
        create_renderer,
        description="Mitsuba 3 differentiable ray tracer (LLVM on CPU, CUDA on GPU).",
        check=check,
        options=MitsubaOptions,
    )
