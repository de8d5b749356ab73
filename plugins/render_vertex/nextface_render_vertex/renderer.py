"""The ``vertex`` renderer: rasterise → interpolate → sample textures → shade → antialias.

Three back ends behind one :class:`VertexRenderer`:

- the compiled C++ kernels of :mod:`.compiled` (CPU tensors; the default where they are
  built), which fuse barycentrics, interpolation, texture lookups and shading in one pass
  over the covered pixels;
- the PyTorch rasteriser of :mod:`nextface_core.raster` (CPU and CUDA tensors), which
  shades only the covered pixels (a flat list of M points) and scatters them into the
  image at the end;
- nvdiffrast (:mod:`.nvdiffrast_backend`) when it imports and the inputs are on CUDA.

All three compute :mod:`nextface_core.shading`'s model; the compiled and PyTorch paths
agree to rounding (same visibility and barycentrics bit for bit), nvdiffrast up to its
rasterisation tie rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.profiler import record_function

from nextface_core.camera import project
from nextface_core.errors import BackendUnavailableError
from nextface_core.options import option
from nextface_core.raster import antialias, face_neighbors, interpolate_channels, rasterize, scatter_covered
from nextface_core.render import RenderInputs, RenderMode, RenderOutput, RenderSettings
from nextface_core.shading import shade_channels
from nextface_core.shadows import Shadows

from . import compiled, nvdiffrast_backend

KERNELS = ("auto", "compiled", "torch")

#: values of the ``nvdiffrast`` option (and of ``VertexRenderer(use_nvdiffrast=...)``)
NVDIFFRAST_CHOICES = ("auto", "never", "always")


def sample_textures(textures: list[Tensor], uv: Tensor, batch_index: Tensor) -> list[Tensor]:
    """Bilinear lookups of several textures at the same channel-major points.

    u → column, v → row from the top, texel centres at ``(i + ½)/T``; coordinates are
    clamped to the outer texel centres (nvdiffrast's ``clamp`` mode). Per-image textures
    are stacked into one tall image so every point is sampled in one ``grid_sample``
    call; the clamp keeps a lookup from bleeding into the next image's rows. Textures of
    one shape share the sampling grid (one ``grid_sample`` each: measured faster than one
    call on the channel-stacked textures).

    Args:
        textures: each ``[B or 1,T_h,T_w,C_i]`` float (a leading 1 is shared by all images).
        uv: ``[2,M]`` float texture coordinates of M points, in the dtype of the textures.
        batch_index: ``[M]`` int64 image of each point.

    Returns:
        One channel-major ``[C_i,M]`` per texture, its dtype; differentiable w.r.t. the
        textures and ``uv``.
    """
    grids: dict[tuple[int, int, int], Tensor] = {}
    out = []
    for texture in textures:
        tb, th, tw, channels = texture.shape
        grid = grids.get((tb, th, tw))
        if grid is None:
            x = (uv[0] * tw - 0.5).clamp(0.0, tw - 1.0)
            y = (uv[1] * th - 0.5).clamp(0.0, th - 1.0)
            if tb > 1:
                y = y + batch_index.to(y.dtype) * th
            grid = torch.stack([(x + 0.5) * (2.0 / tw) - 1.0, (y + 0.5) * (2.0 / (tb * th)) - 1.0], -1)[None, None]
            grids[(tb, th, tw)] = grid
        image = texture.permute(3, 0, 1, 2).reshape(1, channels, tb * th, tw)
        sampled = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out.append(sampled[0, :, 0])
    return out


class VertexRenderer:
    """Differentiable rasterising renderer (the ``vertex`` renderer of NextFace).

    ``use_nvdiffrast``: ``"auto"`` (nvdiffrast when importable and inputs are on CUDA),
    ``"never"``, or ``"always"`` (error when it cannot be used). ``kernels`` for the
    other inputs: ``"auto"`` (compiled kernels where built and the inputs are float CPU
    tensors, else PyTorch), ``"compiled"`` (error when they cannot be used) or ``"torch"``.
    """

    name = "vertex"

    def __init__(self, use_nvdiffrast: str = "auto", kernels: str = "auto", shadows: bool = True) -> None:
        if use_nvdiffrast not in NVDIFFRAST_CHOICES:
            raise ValueError(f"use_nvdiffrast must be 'auto', 'never' or 'always', got {use_nvdiffrast!r}")
        if kernels not in KERNELS:
            raise ValueError(f"kernels must be 'auto', 'compiled' or 'torch', got {kernels!r}")
        self.use_nvdiffrast = use_nvdiffrast
        self.kernels = kernels
        self._topology: tuple[Tensor, Tensor] | None = None  # faces, face_neighbors(faces)
        self._nvdiffrast: nvdiffrast_backend.NvdiffrastBackend | None = None
        self.shadows = Shadows() if shadows else None

    def reset(self) -> None:
        """Forget what was cached from earlier renders (the shadows' visibility): a fit calls
        it first, so its result does not depend on what this renderer drew before."""
        if self.shadows is not None:
            self.shadows.reset()

    def backend_for(self, inputs: RenderInputs) -> str:
        """``"nvdiffrast"``, ``"compiled"`` or ``"torch"``: which back end :meth:`render` uses for these inputs."""
        if self.use_nvdiffrast == "never":
            return self._cpu_backend(inputs)
        usable = inputs.vertices.is_cuda and nvdiffrast_backend.available()
        if self.use_nvdiffrast == "always" and not usable:
            raise BackendUnavailableError(
                f"nvdiffrast cannot render these inputs "
                f"({nvdiffrast_backend.status()}; tensors on {inputs.vertices.device})",
                "install nvdiffrast from its git repository and move the inputs to a CUDA device, "
                "or use use_nvdiffrast='auto'",
            )
        return "nvdiffrast" if usable else self._cpu_backend(inputs)

    def _cpu_backend(self, inputs: RenderInputs) -> str:
        if self.kernels == "torch":
            return "torch"
        if compiled.supports(inputs):
            return "compiled"
        if self.kernels == "compiled":
            raise BackendUnavailableError(
                f"the compiled kernels cannot render these inputs ({compiled.status()}; "
                f"tensors {inputs.vertices.dtype} on {inputs.vertices.device})",
                "rebuild them (pip install -e plugins/render_vertex) and pass float CPU tensors, "
                "or use kernels = \"auto\"",
            )
        return "torch"

    def render(self, inputs: RenderInputs, settings: RenderSettings) -> RenderOutput:
        """Render ``inputs`` at ``settings.image_size`` (H, W) in ``settings.mode`` → linear
        ``image [B,H,W,3]`` and anti-aliased ``mask [B,H,W,1]`` (samples and seed unused).
        With shadows on, the light a point's surroundings hide is taken out of the diffuse and
        specular values looked up there (:meth:`nextface_core.shadows.Shadows.factor_texture`)."""
        shadow = None
        if self.shadows is not None and settings.mode is not RenderMode.ALBEDO:
            if settings.mode is RenderMode.LIGHTING:  # a white Lambertian surface, shadowed
                white = inputs.diffuse.new_ones(1, 1, 1, 3)
                inputs = replace(inputs, diffuse=white, specular=torch.zeros_like(white))
                settings = replace(settings, mode=RenderMode.FULL)
            with record_function("vertex.shadows"):
                shadow = self.shadows.factor_texture(inputs)
        return self.render_shadowed(inputs, settings, shadow)

    def render_shadowed(self, inputs: RenderInputs, settings: RenderSettings, shadow: Tensor | None) -> RenderOutput:
        """:meth:`render` under a given factor texture ``shadow [B or 1,T_s,T_s,6]`` (diffuse
        rgb, specular rgb factors) or none, on the back end :meth:`backend_for` picks."""
        backend = self.backend_for(inputs)
        if backend == "nvdiffrast":
            if self._nvdiffrast is None:
                self._nvdiffrast = nvdiffrast_backend.NvdiffrastBackend()
            return self._nvdiffrast.render(inputs, settings, shadow)
        if backend == "compiled":
            return compiled.render(inputs, settings, self._neighbors(inputs.faces), shadow)
        return self._render_torch(inputs, settings, shadow)

    def _neighbors(self, faces: Tensor) -> Tensor:
        cached = self._topology
        same = (
            cached is not None
            and cached[0].shape == faces.shape
            and cached[0].device == faces.device
            and torch.equal(cached[0], faces)
        )
        if not same:
            cached = (faces.clone(), face_neighbors(faces))
            self._topology = cached
        return cached[1]

    def _render_torch(self, inputs: RenderInputs, settings: RenderSettings, shadow: Tensor | None) -> RenderOutput:
        height, width = settings.image_size
        batch = inputs.batch_size
        vertices = inputs.vertices
        mode = settings.mode
        with record_function("vertex.raster"):
            pixels = project(vertices, inputs.focal, inputs.principal_point)
            frags = rasterize(pixels, vertices[..., 2], inputs.faces, (height, width))
            batch_index = frags.covered // (height * width)
        with record_function("vertex.interpolate"):
            uv = inputs.uv.to(vertices.dtype)[None].expand(batch, -1, -1)
            if mode is RenderMode.ALBEDO:
                uv_px = interpolate_channels(uv, frags)
            else:
                attrs = interpolate_channels(torch.cat([vertices, inputs.normals, uv], -1), frags)  # [8, M]
                position, normal, uv_px = attrs.split([3, 3, 2])
        with record_function("vertex.texture"):
            if mode is RenderMode.LIGHTING:
                diffuse = specular = roughness = position  # unused by the lighting-only shading
            elif mode is RenderMode.ALBEDO:
                (diffuse,) = sample_textures([inputs.diffuse], uv_px, batch_index)
            else:
                maps = [inputs.diffuse, inputs.specular, inputs.roughness] + ([] if shadow is None else [shadow])
                diffuse, specular, roughness, *factors = sample_textures(maps, uv_px, batch_index)
                if factors:
                    diffuse, specular = diffuse * factors[0][:3], specular * factors[0][3:]
        with record_function("vertex.shade"):
            if mode is RenderMode.ALBEDO:
                color = diffuse
            else:
                color = shade_channels(normal, position, diffuse, specular, roughness, inputs.sh, mode, batch_index)
        with record_function("vertex.antialias"):
            covered = torch.cat([color, torch.ones_like(color[:1])]).t()  # [M, 4]
            neighbors = self._neighbors(inputs.faces)
            image = antialias(scatter_covered(covered, frags), frags, pixels, inputs.faces, neighbors)
        return RenderOutput(image=image[..., :3], mask=image[..., 3:])


@dataclass(frozen=True)
class VertexOptions:
    """``[plugins.render_vertex]``: which rasteriser back end to use."""

    nvdiffrast: str = option("auto", "nvdiffrast on CUDA inputs when installed (auto), never, or always", choices=NVDIFFRAST_CHOICES)
    kernels: str = option("auto", "the compiled CPU kernels where they apply (auto), always (compiled), or the PyTorch path (torch)",
                          choices=KERNELS)
    shadows: bool = option(True, "shadow the light the face hides from itself (eye sockets, nose), as ray tracers do")


def create(config: Any, options: VertexOptions) -> VertexRenderer:
    """Factory for the registry, with the checked ``[plugins.render_vertex]`` options."""
    return VertexRenderer(use_nvdiffrast=options.nvdiffrast, kernels=options.kernels, shadows=options.shadows)
