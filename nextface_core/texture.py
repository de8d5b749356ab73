"""Texture-space machinery: per-vertex values ↔ ``T × T`` textures on a model's uv layout.

:class:`TextureMapper` rasterises the uv triangles once per ``(uv, faces, T)`` with the
core rasteriser (:func:`nextface_core.raster.rasterize`, pixels = ``uv · T``, depth 1) and
keeps, for every texel, the face it lies in and its barycentrics. Texels no triangle covers
(the gutters around and between charts) take the face of the nearest covered texel (a
dilation): within two texels of a chart they continue that triangle's linear interpolant,
farther out they copy the nearest covered texel's value, so bilinear lookups at chart
borders never blend in black.

- :meth:`TextureMapper.to_texture`: ``[B,N,C]`` per-vertex → ``[B,T,T,C]`` (a gather and a
  weighted sum; differentiable w.r.t. the values);
- :meth:`TextureMapper.to_vertices`: ``[B,T,T,C]`` → ``[B,N,C]`` by bilinear sampling at
  each vertex's uv (differentiable w.r.t. the texture).

uv convention: ``u`` → column, ``v`` → row from the top, origin at the top-left texel's
corner, so texel ``(row, col)`` has its centre at ``uv = ((col + .5)/T, (row + .5)/T)``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from .raster import rasterize

RESOLUTIONS = (256, 512, 1024, 2048)
#: gutter texels within this distance of a chart extrapolate its nearest triangle linearly
EXTRAPOLATE_TEXELS = 2.0
_CACHE_SIZE = 8
_cache: "OrderedDict[tuple, TextureMapper]" = OrderedDict()


class TextureMapper:
    """Texel lookup tables for one ``uv [N,2]``, ``faces [F,3]`` and resolution ``T``.

    ``texel_face [T·T]`` int64: the uv triangle each texel takes its values from (its own, or
    in the gutters the nearest covered texel's); ``texel_vertices [T·T,3]`` int64: that
    triangle's three vertices;
    ``texel_weights [T·T,3]``: their barycentric weights; ``coverage [T,T]`` bool: texels
    inside a uv triangle (False in the dilated gutters). The last two are views of
    corner-major ``[3, T·T]`` tables, the layout :meth:`to_texture` gathers with.
    """

    def __init__(self, uv: torch.Tensor, faces: torch.Tensor, resolution: int) -> None:
        if resolution < 2:
            raise ValueError(f"texture resolution must be at least 2, got {resolution}")
        if uv.ndim != 2 or uv.shape[1] != 2:
            raise ValueError(f"uv must be [N,2], got {tuple(uv.shape)}")
        t = int(resolution)
        self.resolution = t
        self.uv = uv.detach()
        pixels = (self.uv * t)[None]
        fragments = rasterize(pixels, torch.ones_like(pixels[..., 0]), faces, (t, t))
        face = fragments.face_index[0]
        covered = face >= 0
        if not bool(covered.any()):
            raise ValueError("no uv triangle covers any texel centre; are the uv coordinates in [0, 1]?")
        source, distance = _nearest_covered(covered.cpu().numpy())
        source = torch.from_numpy(source).to(face.device)
        face_of_texel = face.reshape(-1)[source]
        weights = fragments.barycentric[0].detach().reshape(-1, 3)[source]
        # gutter texels near a chart continue the nearest triangle's linear interpolant
        # (barycentrics of their own centre), so bilinear lookups at boundary vertices stay
        # accurate; farther ones copy the nearest covered texel's value
        near = torch.from_numpy((distance > 0) & (distance <= EXTRAPOLATE_TEXELS)).to(face.device)
        near_index = torch.nonzero(near).squeeze(1)
        corners = pixels[0][faces.long()[face_of_texel[near_index]]].to(torch.float64)  # [M,3,2]
        centre = torch.stack([near_index % t, near_index // t], 1).to(torch.float64) + 0.5
        weights[near_index] = _barycentric(corners, centre).to(weights.dtype)
        self.coverage = covered
        self.texel_face = face_of_texel
        self._corner_vertices = faces.long()[face_of_texel].t().contiguous()  # [3, T·T]
        self._corner_weights = weights.t().contiguous()  # [3, T·T]

    @property
    def texel_vertices(self) -> torch.Tensor:
        return self._corner_vertices.t()

    @property
    def texel_weights(self) -> torch.Tensor:
        return self._corner_weights.t()

    @classmethod
    def cached(cls, uv: torch.Tensor, faces: torch.Tensor, resolution: int) -> "TextureMapper":
        """A mapper for these arrays, reused across calls (keyed by content, a few kept)."""
        key = (_digest(uv), _digest(faces), int(resolution), str(uv.device))
        mapper = _cache.get(key)
        if mapper is None:
            mapper = cls(uv, faces, resolution)
            _cache[key] = mapper
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        _cache.move_to_end(key)
        return mapper

    def to(self, device: torch.device | str) -> "TextureMapper":
        """Move the lookup tables (in place) and return self."""
        self.uv = self.uv.to(device)
        self.coverage = self.coverage.to(device)
        self.texel_face = self.texel_face.to(device)
        self._corner_vertices = self._corner_vertices.to(device)
        self._corner_weights = self._corner_weights.to(device)
        return self

    def to_texture(self, values: torch.Tensor) -> torch.Tensor:
        """Per-vertex ``values [B,N,C]`` → texture ``[B,T,T,C]`` (barycentric blend per texel)."""
        if values.ndim != 3:
            raise ValueError(f"values must be [B,N,C], got {tuple(values.shape)}")
        b, n, c = values.shape
        t = self.resolution
        # channel-major gather of the three corners (fast index_add backward on CPUs)
        corners = values.permute(2, 0, 1).reshape(c * b, n).index_select(1, self._corner_vertices.view(-1)).view(c * b, 3, -1)
        out = (corners * self._corner_weights.to(values.dtype)[None]).sum(1)  # [C·B, T·T]
        return out.view(c, b, t, t).permute(1, 2, 3, 0)

    def to_vertices(self, texture: torch.Tensor) -> torch.Tensor:
        """Texture ``[B,T,T,C]`` → per-vertex ``[B,N,C]``, bilinear at each vertex's uv."""
        return sample(texture, self.uv.to(texture.dtype)[None].expand(texture.shape[0], -1, -1))


def sample(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear texture lookup; edge texels extend outwards.

    Args:
        texture: ``[B,T,T,C]`` float.
        uv: ``[B,M,2]`` float in [0, 1]; u → column, v → row from the top, origin at the
            top-left corner.

    Returns:
        ``[B,M,C]`` values; differentiable w.r.t. ``texture`` and ``uv``.
    """
    if texture.ndim != 4:
        raise ValueError(f"texture must be [B,T,T,C], got {tuple(texture.shape)}")
    grid = (uv * 2.0 - 1.0)[:, None]  # [B,1,M,2], x = u, y = v
    out = F.grid_sample(texture.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, 0].permute(0, 2, 1)


def _nearest_covered(covered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every texel, the flat index of the nearest covered texel (itself if covered) and
    the distance to it in texels."""
    from scipy.ndimage import distance_transform_edt

    distance, (rows, cols) = distance_transform_edt(~covered, return_indices=True)
    return (rows * covered.shape[1] + cols).reshape(-1).astype(np.int64), distance.reshape(-1)


def _barycentric(corners: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """Unclamped barycentrics of ``point [M,2]`` in triangles ``corners [M,3,2]`` → ``[M,3]``."""
    a, b, c = corners.unbind(1)
    v0, v1, v2 = b - a, c - a, point - a
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    det = torch.where(det.abs() > 1e-12, det, torch.full_like(det, 1e-12))
    w1 = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / det
    w2 = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / det
    return torch.stack([1.0 - w1 - w2, w1, w2], 1)


def _digest(tensor: torch.Tensor) -> str:
    data = tensor.detach().cpu().contiguous().numpy()
    return hashlib.sha1(data.tobytes() + str(data.dtype).encode() + str(data.shape).encode()).hexdigest()
