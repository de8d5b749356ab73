"""NextFace plugin: the ``vertex`` renderer, a differentiable rasteriser for CPU and CUDA.

PyTorch rasterisation (:mod:`nextface_core.raster`) everywhere; nvdiffrast on CUDA when
it is installed. Shading is the core's (:mod:`nextface_core.shading`).
"""

from __future__ import annotations

import torch

from nextface_core import Availability, hookimpl

from . import nvdiffrast_backend
from .renderer import VertexOptions, VertexRenderer, create, sample_textures

__all__ = ["VertexOptions", "VertexRenderer", "check", "create", "sample_textures"]


def check() -> Availability:
    """Always usable (plain PyTorch); says which devices and whether nvdiffrast can be used."""
    devices = "cpu, cuda" if torch.cuda.is_available() else "cpu"
    return Availability(True, f"torch rasteriser ({devices}); {nvdiffrast_backend.status()}")


@hookimpl
def nextface_register_renderers(register) -> None:
    register(
        "vertex",
        create,
        description="Differentiable PyTorch rasteriser (nvdiffrast on CUDA when installed).",
        check=check,
        options=VertexOptions,
    )
