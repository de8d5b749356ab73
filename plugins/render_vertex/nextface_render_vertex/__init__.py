"""NextFace plugin: Differentiable PyTorch rasteriser (nvdiffrast on CUDA when installed)."""

from __future__ import annotations

from typing import Any

from nextface_core import hookimpl
from nextface_core.errors import BackendUnavailableError


def _create(config: Any) -> Any:
    raise BackendUnavailableError(
        "renderer 'vertex' is not implemented yet", "use another renderer; this plugin only registers itself for now"
    )


@hookimpl
def nextface_register_renderers(register) -> None:
    register("vertex", _create, description="Differentiable PyTorch rasteriser (nvdiffrast on CUDA when installed).")
