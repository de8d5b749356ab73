"""The nvdiffrast back end of the ``vertex`` renderer (CUDA only; optional).

nvdiffrast (Laine et al. 2020) is installed from its git repository, never required.
The import is attempted once, lazily; :func:`available` and :func:`status` report it.

Conventions mapped onto nvdiffrast's:

- clip space from our pinhole camera: ``x_ndc = 2·px/W − 1``, ``y_ndc = 2·py/H − 1``
  with ``w = z`` (camera depth), so nvdiffrast's row 0 (``y_ndc = −1``) is our top row
  and pixel centres land on integer + ½ as in :mod:`nextface_core.raster`; depth is
  mapped to ``z_ndc ∈ [−1, 1]`` between a near and far plane bracketing the mesh.
- textures ``[B or 1,T,T,C]`` are nvdiffrast's layout already (minibatch broadcast,
  row 0 at v = 0); ``filter_mode="linear"``, ``boundary_mode="clamp"`` equals our
  bilinear lookup clamped to the outer texel centres.
- shading is :func:`nextface_core.shading.shade` on the interpolated G-buffer, then
  ``dr.antialias`` on colour and coverage together.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor

from nextface_core.render import RenderInputs, RenderMode, RenderOutput, RenderSettings
from nextface_core.shading import shade

_module: Any = None
_error: str | None = None


def _load() -> Any:
    global _module, _error
    if _module is None and _error is None:
        try:
            _module = importlib.import_module("nvdiffrast.torch")
        except Exception as exc:  # not installed, or its CUDA extension fails to build
            _error = f"{type(exc).__name__}: {exc}"
    return _module


def available() -> bool:
    """True when ``nvdiffrast.torch`` imports and CUDA is available."""
    return torch.cuda.is_available() and _load() is not None


def status() -> str:
    """One line for ``nextface plugins list``: why nvdiffrast is or is not usable."""
    if _load() is None:
        return "nvdiffrast: not installed" if _error and "No module named" in _error else f"nvdiffrast: unusable ({_error})"
    return "nvdiffrast: available" if torch.cuda.is_available() else "nvdiffrast: installed, no CUDA device"


def clip_positions(vertices: Tensor, focal: Tensor, principal_point: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Camera-space ``vertices [B,N,3]`` → homogeneous clip coordinates ``[B,N,4]`` for nvdiffrast."""
    height, width = image_size
    x, y, z = vertices.unbind(-1)
    f = focal[:, None]
    cx, cy = principal_point[:, 0:1], principal_point[:, 1:2]
    with torch.no_grad():
        valid = z[z > 0]
        near = (valid.min() * 0.5) if valid.numel() else z.new_tensor(1e-3)
        far = (valid.max() * 2.0) if valid.numel() else z.new_tensor(1.0)
    clip_x = 2.0 * (f * x + cx * z) / width - z
    clip_y = 2.0 * (f * y + cy * z) / height - z
    clip_z = (z * (far + near) - 2.0 * far * near) / (far - near)
    return torch.stack([clip_x, clip_y, clip_z, z], -1)


class NvdiffrastBackend:
    """Renders :class:`RenderInputs` with nvdiffrast; reuses its CUDA context and topology hash."""

    def __init__(self) -> None:
        dr = _load()
        if dr is None:
            raise RuntimeError(status())
        self._dr = dr
        self._context: Any = None
        self._topology: tuple[Tensor, Any] | None = None

    def _setup(self, faces: Tensor) -> tuple[Any, Tensor, Any]:
        tri = faces.to(torch.int32).contiguous()
        if self._context is None:
            self._context = self._dr.RasterizeCudaContext(device=tri.device)
        if self._topology is None or self._topology[0].shape != tri.shape or not torch.equal(self._topology[0], tri):
            self._topology = (tri, self._dr.antialias_construct_topology_hash(tri))
        return self._context, tri, self._topology[1]

    def render(self, inputs: RenderInputs, settings: RenderSettings, shadow: Tensor | None = None) -> RenderOutput:
        """:meth:`VertexRenderer.render_shadowed <nextface_render_vertex.VertexRenderer.render_shadowed>`
        on nvdiffrast (CUDA inputs)."""
        dr = self._dr
        context, tri, topology = self._setup(inputs.faces)
        batch = inputs.batch_size
        size = settings.image_size
        vertices = inputs.vertices.float()
        pos = clip_positions(vertices, inputs.focal.float(), inputs.principal_point.float(), size).contiguous()
        rast, _ = dr.rasterize(context, pos, tri, resolution=size)
        mask = (rast[..., 3:4] > 0).float()
        uv = inputs.uv.float()[None].expand(batch, -1, -1)
        attrs = torch.cat([vertices, inputs.normals.float(), uv], -1).contiguous()
        gbuffer, _ = dr.interpolate(attrs, rast, tri)
        position, normal, uv_px = gbuffer.split([3, 3, 2], dim=-1)
        uv_px = uv_px.contiguous()
        mode = settings.mode

        def texture(t: Tensor) -> Tensor:
            return dr.texture(t.float().contiguous(), uv_px, filter_mode="linear", boundary_mode="clamp")

        diffuse = texture(inputs.diffuse) if mode is not RenderMode.LIGHTING else position
        if mode is RenderMode.FULL:
            specular, roughness = texture(inputs.specular), texture(inputs.roughness)
            if shadow is not None:
                factors = texture(shadow)
                diffuse, specular = diffuse * factors[..., :3], specular * factors[..., 3:]
        else:
            specular, roughness = position, position[..., :1]
        # background pixels get a harmless normal and position; they are masked out below
        safe_normal = torch.where(mask > 0, normal, torch.ones_like(normal))
        safe_position = torch.where(mask > 0, position, torch.ones_like(position))
        color = shade(safe_normal, safe_position, diffuse, specular, roughness, inputs.sh.float(), mode) * mask
        image = dr.antialias(torch.cat([color, mask], -1).contiguous(), rast, pos, tri, topology_hash=topology)
        return RenderOutput(image=image[..., :3], mask=image[..., 3:])
