"""NextFace plugin: redner differentiable ray tracer (Python <= 3.8 only)."""

from __future__ import annotations

from typing import Any

from nextface_core import hookimpl
from nextface_core.errors import BackendUnavailableError


def _create(config: Any) -> Any:
    raise BackendUnavailableError(
        "renderer 'redner' is not implemented yet", "use another renderer; this plugin only registers itself for now"
    )


@hookimpl
def nextface_register_renderers(register) -> None:
    register("redner", _create, description="redner differentiable ray tracer (Python <= 3.8 only).")
