"""Self-shadowing for renderers that do not trace rays: which directions each surface point sees.

A rasteriser shades every point with the whole sphere of light (:mod:`nextface_core.shading`),
so the eye sockets, the sides of the nose and the space under it are lit as if nothing stood in
the way. A ray tracer (Mitsuba) shadows them, and so does the world. Without shadows a fit
paints them into the diffuse map as dark albedo, and that darkness stays when the light or the
view changes.

:class:`Visibility` rasterises the mesh from ``D`` directions spread over the sphere
(orthographic shadow maps) and records, per surface point (the centres of uv texels) and
direction, whether a nearer surface hides the light coming from there. :meth:`Visibility.factors`
then turns it, for a light ``L``, into ratios of shadowed to unshadowed radiance per point (one
quadrature for both, so a point that sees the whole sky gets exactly 1):

    diffuse  = Σ_d V(d) max(n·d, 0) L(d) / Σ_d max(n·d, 0) L(d)
    specular = Σ_d V(d) lobe(R·d) L(d)  / Σ_d lobe(R·d) L(d)

:class:`Shadows` lays them out as a small factor texture in the uv layout, which a renderer
samples beside its maps and multiplies into the diffuse and specular values it looked up
(the ``vertex`` renderer's kernels do); like the per-texel maps themselves, this needs uv
coordinates that do not overlap. The texture is :data:`SHADOW_TEXELS` a side whatever the
maps' resolution, so shadows cost the same with 256² or 2048² maps (multiplying the maps
themselves cost 7× the render at 2048², benchmark ``render_vertex``). Visibility is a
function of the geometry only (no gradient).

Measured on the reflectance truth (full-size synthetic face, true geometry and maps, 256 px):
the ``vertex`` render against Mitsuba's ray-traced one (256 spp) 36.2 dB without shadows,
41.3 dB with them; one visibility takes about 0.17 s on 2 cores (benchmark ``shadows``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .render import RenderInputs
from .sh import radiance, sphere_directions
from .texture import TextureMapper

#: directions of the shadow maps (Fibonacci sphere)
DIRECTIONS = 96
#: shadow-map side in pixels
MAP_SIZE = 128
#: a surface hides a point when it is this many shadow-map pixels nearer the light
DEPTH_BIAS_PIXELS = 1.5
#: the largest depth slope (tangent of the angle to the light) the bias allows for
MAX_SLOPE = 4.0
#: shadows are computed at the centres of this many texels a side of the uv layout
SHADOW_TEXELS = 96
#: a visibility is recomputed when a vertex has moved by this fraction of the mesh's size
MOVE_TOLERANCE = 0.01
#: the glossy lobe the specular factor uses: cos^k around the mirror direction
LOBE_EXPONENT = 8.0


def _frames(directions: Tensor) -> tuple[Tensor, Tensor]:
    """Two unit vectors ``[D,3]`` each, orthogonal to ``directions`` and to each other."""
    helper = torch.where(directions[:, :1].abs() < 0.9, directions.new_tensor([1.0, 0.0, 0.0]),
                         directions.new_tensor([0.0, 1.0, 0.0]))
    a = F.normalize(torch.cross(helper.expand_as(directions), directions, dim=-1), dim=-1)
    return a, torch.cross(directions, a, dim=-1)


@dataclass
class Visibility:
    """What the points of a batch see, from :meth:`of`. ``weights [B,D,4·M]``: per image
    ``b``, direction ``d`` of ``directions [D,3]`` (camera space) and point ``m``, the weights
    of the two quadratures of :meth:`factors`, in four blocks of ``M``: ``max(n·d, 0)``, the
    same where ``d`` is visible, the glossy lobe around the mirror direction, the same where
    visible (direction-major: one matrix product with the light's radiance gives all four).
    ``vertices [B,N,3]``: the geometry they are for, ``extent`` its largest bounding-box diagonal."""

    directions: Tensor
    weights: Tensor
    vertices: Tensor
    extent: float

    @classmethod
    @torch.no_grad()
    def of(cls, points: Tensor, normals: Tensor, vertices: Tensor, faces: Tensor, directions: int = DIRECTIONS,
           size: int = MAP_SIZE) -> "Visibility":
        """Visibility of camera-space surface ``points [B,M,3]`` with ``normals [B,M,3]`` on
        the mesh ``vertices [B,N,3]``, ``faces [F,3]``.

        Each of ``directions`` shadow maps of ``size²`` pixels holds the depth nearest the
        light per pixel, from the vertices and the face centroids splatted into it (a dense
        face mesh leaves no pixel of its own empty). A point is hidden in a direction where
        the map holds a surface nearer the light by more than :data:`DEPTH_BIAS_PIXELS`
        pixels, scaled by its own depth slope (the surface around it spans that much
        depth within one pixel).
        """
        vertices, points = vertices.detach(), points.detach()
        normals = F.normalize(normals.detach(), dim=-1)
        dirs = sphere_directions(directions, vertices.dtype, vertices.device)
        frame = torch.cat([*_frames(dirs), dirs])  # [3D,3]: map x, map y, towards the light
        centroids = vertices[:, faces.long()].mean(2)  # [B,F,3]
        first_pixel = (torch.arange(directions, device=vertices.device, dtype=vertices.dtype) * size)[:, None]
        views = -F.normalize(points, dim=-1)
        reflected = 2.0 * (normals * views).sum(-1, keepdim=True) * normals - views
        m = points.shape[1]
        weights = vertices.new_empty(vertices.shape[0], directions, 4 * m)
        for b, verts in enumerate(vertices):  # one image's D maps at once
            centre = (verts.amax(0) + verts.amin(0)) / 2.0
            scale = size / (2.02 * float((verts - centre).norm(dim=-1).max()))

            def splat(where: Tensor) -> tuple[Tensor, Tensor]:
                """Map pixel ``[D,K]`` int64 and depth ``[D,K]`` (smaller: nearer the light) of ``where [K,3]``."""
                x, y, z = (frame @ (where - centre).t()).split(directions)
                col = x.mul_(scale).add_(size / 2.0).floor_().clamp_(0, size - 1)
                row = y.mul_(scale).add_(size / 2.0).floor_().clamp_(0, size - 1)
                return row.add_(first_pixel).mul_(size).add_(col).long(), z.neg_()

            shadow = verts.new_full((directions * size * size,), float("inf"))
            for index, depth in (splat(verts), splat(centroids[b])):
                shadow.scatter_reduce_(0, index.reshape(-1), depth.reshape(-1), reduce="amin")
            index, depth = splat(points[b])
            out = weights[b]  # [D,4M]
            cosine = torch.mm(dirs, normals[b].t(), out=out[:, :m])
            facing = cosine.clamp(0.05, 1.0)
            slope = ((1.0 - facing * facing).sqrt_() / facing).clamp_(max=MAX_SLOPE)
            visible = (depth <= shadow[index] + DEPTH_BIAS_PIXELS * (1.0 + slope) / scale).to(vertices.dtype)
            cosine.clamp_(min=0.0)
            lobe = torch.mm(dirs, reflected[b].t(), out=out[:, 2 * m : 3 * m]).clamp_(min=0.0).pow_(LOBE_EXPONENT)
            torch.mul(cosine, visible, out=out[:, m : 2 * m])
            torch.mul(lobe, visible, out=out[:, 3 * m :])
        extent = float((vertices.amax(1) - vertices.amin(1)).norm(dim=-1).max())
        return cls(dirs, weights, vertices, extent)

    @classmethod
    def of_inputs(cls, inputs: RenderInputs) -> "Visibility":
        """Visibility of the mesh of ``inputs`` at the centres of :data:`SHADOW_TEXELS`² texels
        of its uv layout (``M = T²``, row-major)."""
        mapper = TextureMapper.cached(inputs.uv, inputs.faces, SHADOW_TEXELS)
        b, t = inputs.batch_size, mapper.resolution
        with torch.no_grad():
            points = mapper.to_texture(inputs.vertices.detach()).reshape(b, t * t, 3)
            normals = mapper.to_texture(inputs.normals.detach()).reshape(b, t * t, 3)
        return cls.of(points, normals, inputs.vertices, inputs.faces)

    def factors(self, sh: Tensor) -> tuple[Tensor, Tensor]:
        """Shadowed over unshadowed radiance per point under the light ``sh [B,bands²,3]``:
        ``diffuse [B,3,M]`` and ``specular [B,3,M]`` (channel-major) in [0, 1], differentiable
        w.r.t. ``sh``."""
        light = radiance(self.directions.to(sh.dtype).expand(sh.shape[0], -1, -1), sh).transpose(1, 2)  # [B,3,D]
        cosine, cosine_seen, lobe, lobe_seen = (light @ self.weights).chunk(4, dim=2)  # [B,3,M] each
        # where no light arrives at all (full ≈ 0) the ratio is meaningless, and the shading 0
        return (cosine_seen / cosine.clamp_min(1e-6)).clamp(0.0, 1.0), (lobe_seen / lobe.clamp_min(1e-6)).clamp(0.0, 1.0)

    def moved(self, vertices: Tensor) -> bool:
        """Whether ``vertices [B,N,3]`` differ from the geometry this is for by more than
        :data:`MOVE_TOLERANCE` of the mesh's size (or in shape), a translation of the whole
        mesh aside (it moves no shadow under a distant light)."""
        if vertices.shape != self.vertices.shape or vertices.device != self.vertices.device:
            return True
        change = vertices.detach() - self.vertices
        return float((change - change.mean(1, keepdim=True)).abs().amax()) > MOVE_TOLERANCE * self.extent


def factor_maps(visibility: Visibility, sh: Tensor) -> tuple[Tensor, Tensor]:
    """:meth:`Visibility.factors` of a visibility at texel centres (:meth:`Visibility.of_inputs`)
    as diffuse and specular factor maps ``[B,3,T,T]`` (channel-major)."""
    b, t = sh.shape[0], math.isqrt(visibility.weights.shape[2] // 4)
    diffuse, specular = visibility.factors(sh)
    return diffuse.reshape(b, 3, t, t), specular.reshape(b, 3, t, t)


def resized(factors: Tensor, size: tuple[int, int]) -> Tensor:
    """Factor maps ``[B,3,T,T]`` at ``size`` (H, W), channels last ``[B,H,W,3]`` (bilinear:
    shadows are smooth at the scale of their texels)."""
    size = (int(size[0]), int(size[1]))
    if tuple(factors.shape[2:]) != size:
        factors = F.interpolate(factors, size=size, mode="bilinear", align_corners=False)
    return factors.permute(0, 2, 3, 1)


class Shadows:
    """Shadow factors for a renderer that does not trace rays (the ``vertex`` renderer).

    The shadows are computed at the centres of :data:`SHADOW_TEXELS`² texels of the uv
    layout (whatever the mesh's vertex count or the maps' resolution).
    :meth:`factor_texture` keeps the :class:`Visibility` of the last geometry and recomputes it only
    when a vertex moved by more than :data:`MOVE_TOLERANCE` of the mesh's size (or the mesh
    changed): a fit moves its geometry by small steps, and a shadow moves with the surface
    that casts it much less than that. Under a light without gradient (stage 3, the final
    renders) the factor texture is kept too. :meth:`reset` forgets both, so a new fit does not
    start from the last one's geometry.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the cached visibility and factor texture."""
        self._visibility: Visibility | None = None
        self._faces: Tensor | None = None
        self._texture: tuple[Tensor, Tensor] | None = None  # light, factor texture

    def visibility(self, inputs: RenderInputs) -> Visibility:
        """The visibility of ``inputs``' geometry (cached, see the class docstring)."""
        same_mesh = self._faces is not None and self._faces.shape == inputs.faces.shape and torch.equal(self._faces, inputs.faces)
        if self._visibility is None or not same_mesh or self._visibility.moved(inputs.vertices):
            self._visibility = Visibility.of_inputs(inputs)
            self._faces = inputs.faces.clone()
            self._texture = None
        return self._visibility

    def factor_texture(self, inputs: RenderInputs) -> Tensor:
        """The shadows of ``inputs`` as a texture ``[B,T_s,T_s,6]`` in its uv layout: the
        factors of the diffuse rgb, then of the specular rgb values a renderer samples from
        the maps (bilinearly, like the maps). Differentiable w.r.t. the light: how much a
        shadow takes depends on where the light is."""
        visibility = self.visibility(inputs)
        if not inputs.sh.requires_grad:  # a fixed light (stage 3, final renders): the same texture every time
            if self._texture is None or not torch.equal(self._texture[0], inputs.sh):
                self._texture = (inputs.sh.clone(), _channels_last(factor_maps(visibility, inputs.sh)))
            return self._texture[1]
        return _channels_last(factor_maps(visibility, inputs.sh))


def _channels_last(maps: tuple[Tensor, Tensor]) -> Tensor:
    """Diffuse and specular factor maps ``[B,3,T,T]`` each → one texture ``[B,T,T,6]``."""
    return torch.cat(maps, 1).permute(0, 2, 3, 1).contiguous()
