"""NextFace plugin: the redner differentiable ray tracer (redner publishes wheels for Python ≤ 3.8 only).

Registers renderer ``redner`` on every Python. Where pyredner does not import, the
registration stays (so ``nextface plugins list`` explains itself) and selecting it raises
:class:`~nextface_core.errors.BackendUnavailableError` naming the alternatives.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from nextface_core import hookimpl
from nextface_core.plugins import Availability


def check() -> Availability:
    """Whether pyredner can be imported here (cheap: looks the module up without importing it)."""
    if importlib.util.find_spec("pyredner") is None:
        if sys.version_info >= (3, 9):
            return Availability(False, "redner: not importable (needs Python ≤ 3.8)")
        return Availability(False, "redner: not importable (pip install 'nextface-render-redner[redner]')")
    return Availability(True, "redner: importable")


def create_renderer(config: Any) -> Any:
    """Factory of renderer ``redner`` (no options): a :class:`~nextface_render_redner.renderer.RednerRenderer`."""
    from .renderer import RednerRenderer

    return RednerRenderer()


@hookimpl
def nextface_register_renderers(register) -> None:
    register(
        "redner",
        create_renderer,
        description="redner differentiable ray tracer (Python <= 3.8 only).",
        check=check,
    )
