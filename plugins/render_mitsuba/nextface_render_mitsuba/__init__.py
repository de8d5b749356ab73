"""NextFace plugin: Mitsuba 3 differentiable ray tracer (LLVM on CPU, CUDA on GPU)."""

from __future__ import annotations

from typing import Any

from nextface_core import hookimpl
from nextface_core.errors import BackendUnavailableError


def _create(config: Any) -> Any:
    raise BackendUnavailableError(
        "renderer 'mitsuba' is not implemented yet", "use another renderer; this plugin only registers itself for now"
    )


@hookimpl
def nextface_register_renderers(register) -> None:
    register("mitsuba", _create, description="Mitsuba 3 differentiable ray tracer (LLVM on CPU, CUDA on GPU).")
