"""NextFace plugin: the ``vertex`` renderer, a differentiable rasteriser for CPU and CUDA.

Compiled C++ kernels (:mod:`.compiled`) on CPU tensors where they are built, PyTorch
rasterisation (:mod:`nextface_core.raster`) everywhere else, nvdiffrast on CUDA when it is
installed. The shading model is the core's (:mod:`nextface_core.shading`).
"""

from __future__ import annotations

import torch

from nextface_core import Availability, hookimpl

from . import compiled, nvdiffrast_backend
from .renderer import VertexOptions, VertexRenderer, create, sample_textures

__all__ = ["VertexOptions", "VertexRenderer", "check", "create", "sample_textures"]


def check() -> Availability:
    """Always usable (plain PyTorch); says whether the compiled kernels and nvdiffrast can be used."""
    devices = "cpu, cuda" if torch.cuda.is_available() else "cpu"
    return Availability(True, f"{compiled.status()}; torch rasteriser ({devices}); {nvdiffrast_backend.status()}")


@hookimpl
def nextface_register_renderers(register) -> None:
    register(
        "vertex",
        create,
        description="Differentiable rasteriser: compiled CPU kernels, PyTorch fallback, nvdiffrast on CUDA when installed.",
        check=check,
        options=VertexOptions,
    )
