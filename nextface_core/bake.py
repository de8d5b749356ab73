"""Texture baking: what the photo says about the diffuse map, texel by texel.

Where a photo pixel spans several texels (a 256 px portrait on a 256² map spans about
four), a map fitted texel by texel through a renderer is constrained only next to each
pixel's sample: its finest detail comes out as a lattice of dots that follows the pixel
grid. Stage 3 therefore fits the diffuse map no finer than a pixel
(:mod:`nextface_core.fitting.stages.maps`), and then adds the detail the photo still holds
by baking: every texel is projected into the photo and takes the unlit residual there,

    Δρ_d = (I(x) − R(x)) / (E(n) / π)

(:mod:`nextface_core.shading`), ``I`` the linear photo and ``R`` the render, both sampled
bilinearly at the texel's projection ``x``, ``E(n)/π`` the irradiance at the texel's normal
less the light its surroundings hide (:mod:`nextface_core.shadows`: every renderer shadows).
Bilinear interpolation of pixels fills the texels between pixel centres smoothly. A texel
counts where it is visible (front-facing, not behind nearer surface in the
z-buffer, its pixel covered by the render and inside the photo's weights); its confidence
falls to zero at grazing angles, where a pixel blends the face with what lies behind it.
Views of one identity are averaged by confidence. What the texels see (:class:`TexelView`:
where they project, their confidence, irradiance and glossy light) depends on the fixed
geometry and light only, so it is computed once; each step then renders once, and a few
steps converge where the confidence is 1 (render ∘ bake is close to the identity on pixels).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .camera import project
from .raster import rasterize
from .render import Renderer, RenderInputs, RenderMode, RenderSettings, composite
from .shading import shade
from .shadows import Visibility, factor_maps, resized
from .texture import TextureMapper, sample

#: confidence ramps from 0 to 1 as the cosine between normal and view goes from the first to the second
GRAZING_COSINE = (0.2, 0.5)
#: a texel is hidden where it lies this far (relative to its depth) behind the z-buffer
DEPTH_TOLERANCE = 0.005
#: irradiance (a white surface's radiance) below this does not constrain the albedo
MIN_IRRADIANCE = 0.02


@torch.no_grad()
def refine_maps(renderer: Renderer, inputs: RenderInputs, settings: RenderSettings, images: torch.Tensor,
                weights: torch.Tensor, mapper: TextureMapper, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` baking steps on the diffuse map of ``inputs`` (module docstring).

    Where the photo is darker than the specular term alone (an iris, dark hair: the diffuse
    albedo would go below 0), the rest of the residual lowers the specular albedo of that
    texel instead, by the least that explains the photo; everywhere else the specular map
    is left as it is.

    Args:
        renderer: renders ``inputs`` with ``settings`` once per step.
        inputs: the fitted scene of ``B`` images; its diffuse ``[S,T,T,3]`` and specular
            maps (S = 1 when the images share one identity, else B) are the start.
        images: ``[B,H,W,3]`` linear photos at the fit's size.
        weights: ``[B,H,W,1]`` in [0, 1], the pixels that may be baked (the photo, the face mask).
        mapper: the texture tables of ``inputs.uv`` at the maps' resolution ``T``.

    Returns:
        The refined ``diffuse`` and ``specular`` maps ``[S,T,T,3]`` in [0, 1]; texels no
        pixel sees are unchanged.
    """
    diffuse, specular = inputs.diffuse, inputs.specular.expand_as(inputs.diffuse)
    view: TexelView | None = None
    for _ in range(steps):
        out = renderer.render(replace(inputs, diffuse=diffuse, specular=specular), settings)
        covered = (out.mask > 0.5).to(images.dtype)  # the geometry is fixed: the same every step
        if view is None:
            view = TexelView.of(inputs, weights * covered, mapper)
        texels = view.unlit((images - composite(out, images)) * covered, diffuse.shape[0])
        wanted = diffuse + texels.confidence * texels.delta
        # radiance the diffuse term cannot give up (its albedo at 0), taken from the specular term
        excess = (wanted.clamp(max=0.0) * texels.irradiance).mean(-1, keepdim=True)
        specular = (specular + excess / texels.glossy.mean(-1, keepdim=True).clamp_min(MIN_IRRADIANCE)).clamp(0.0, 1.0)
        diffuse = wanted.clamp(0.0, 1.0)
    return diffuse, specular


def unlit_residual(inputs: RenderInputs, residual: torch.Tensor, weights: torch.Tensor, mapper: TextureMapper,
                   rows: int) -> TexelResidual:
    """A linear image residual ``[B,H,W,3]`` as a diffuse-albedo change per texel (S = ``rows``;
    when 1, the images' confidences are summed and the rest averaged by them)."""
    return TexelView.of(inputs, weights, mapper).unlit(residual, rows)


class TexelResidual(NamedTuple):
    """A residual image seen from the texels, each ``[S,T,T,C]``: ``delta`` (C=3) the
    residual over the irradiance, 0 where nothing is seen; ``confidence`` (C=1) in [0, 1];
    ``irradiance`` (C=3) ``E(n)/π`` and ``glossy`` (C=3) ``S(R, r)`` (:mod:`nextface_core.shading`)."""

    delta: torch.Tensor
    confidence: torch.Tensor
    irradiance: torch.Tensor
    glossy: torch.Tensor


class TexelView(NamedTuple):
    """What every texel of a ``T × T`` map sees in each of ``B`` images, each ``[B,T·T,C]``:
    ``pixels`` (C=2) its projection; ``confidence`` (C=1) in [0, 1]; ``irradiance`` and
    ``glossy`` (C=3) its shading (:class:`TexelResidual`)."""

    pixels: torch.Tensor
    confidence: torch.Tensor
    irradiance: torch.Tensor
    glossy: torch.Tensor
    resolution: int

    @classmethod
    def of(cls, inputs: RenderInputs, weights: torch.Tensor, mapper: TextureMapper) -> "TexelView":
        """The view of ``inputs``' texels; ``weights [B,H,W,1]`` in [0, 1] the pixels that count."""
        b, t = inputs.batch_size, mapper.resolution
        position = _at_texels(inputs.vertices, mapper)  # [B,T²,3] camera space
        normal = _at_texels(inputs.normals, mapper)
        pixels = project(position, inputs.focal, inputs.principal_point)
        view = -position / position.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        cosine = (F.normalize(normal, dim=-1) * view).sum(-1)
        lo, hi = GRAZING_COSINE
        confidence = ((cosine - lo) / (hi - lo)).clamp(0.0, 1.0) * _visible(position, inputs, pixels, weights.shape[1:3])
        confidence = confidence * _sample_image(weights, pixels)[..., 0].clamp(0.0, 1.0)
        zeros = torch.zeros_like(position)
        roughness = inputs.roughness.reshape(inputs.roughness.shape[0], t * t, 1).expand(b, -1, -1)
        seen = factor_maps(Visibility.of_inputs(inputs), inputs.sh)
        diffuse_seen, specular_seen = (resized(f, (t, t)).reshape(b, t * t, 3) for f in seen)
        irradiance = shade(normal, position, zeros, zeros, roughness, inputs.sh, RenderMode.LIGHTING) * diffuse_seen
        glossy = shade(normal, position, zeros, torch.ones_like(position), roughness, inputs.sh, RenderMode.FULL) * specular_seen
        confidence = confidence * (irradiance.min(-1).values > MIN_IRRADIANCE)
        return cls(pixels, confidence[..., None], irradiance, glossy, t)

    def unlit(self, residual: torch.Tensor, rows: int) -> TexelResidual:
        """A linear image residual ``[B,H,W,3]`` as a diffuse-albedo change per texel (S =
        ``rows``; when 1, the images' confidences are summed and the rest averaged by them)."""
        t = self.resolution
        delta = _sample_image(residual, self.pixels) / self.irradiance.clamp_min(MIN_IRRADIANCE)
        c, irradiance, glossy = self.confidence, self.irradiance, self.glossy
        if rows == 1 and c.shape[0] > 1:
            total = c.sum(0, keepdim=True)
            delta, irradiance, glossy = ((x * c).sum(0, keepdim=True) / total.clamp_min(1e-12) for x in (delta, irradiance, glossy))
            c = total.clamp(max=1.0)
        return TexelResidual((delta * (c > 0)).reshape(rows, t, t, 3), c.reshape(rows, t, t, 1),
                             irradiance.reshape(rows, t, t, 3), glossy.reshape(rows, t, t, 3))


def _at_texels(values: torch.Tensor, mapper: TextureMapper) -> torch.Tensor:
    """Per-vertex ``values [B,N,C]`` → ``[B,T·T,C]`` at every texel (barycentric blend)."""
    b, _, c = values.shape
    t = mapper.resolution
    return mapper.to_texture(values).reshape(b, t * t, c)


def _sample_image(image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of ``image [B,H,W,C]`` at ``pixels [B,M,2]`` (x, y; centres at +0.5)
    → ``[B,M,C]`` (:func:`~nextface_core.texture.sample`; outside the image only where
    :func:`_visible` already says no)."""
    h, w = image.shape[1:3]
    return sample(image, pixels / pixels.new_tensor([w, h]))


def _visible(position: torch.Tensor, inputs: RenderInputs, pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B,M]`` bool: texels at camera-space ``position [B,M,3]`` (projected to ``pixels``)
    that no nearer surface hides: not behind the farthest surface the z-buffer holds within a
    pixel of their own (the pixel's own depth alone would hide the sides of the nose behind
    its ridge, which share its pixels)."""
    b = position.shape[0]
    h, w = size
    frags = rasterize(project(inputs.vertices, inputs.focal, inputs.principal_point), inputs.vertices[..., 2],
                      inputs.faces, (h, w))
    zbuffer = torch.where(frags.face_index >= 0, frags.depth, torch.zeros_like(frags.depth))
    farthest = F.max_pool2d(zbuffer[:, None], 3, stride=1, padding=1)[:, 0]
    col = pixels[..., 0].floor().long().clamp(0, w - 1)
    row = pixels[..., 1].floor().long().clamp(0, h - 1)
    nearest = farthest.reshape(b, -1).gather(1, row * w + col)
    inside = (pixels[..., 0] >= 0) & (pixels[..., 0] < w) & (pixels[..., 1] >= 0) & (pixels[..., 1] < h)
    return inside & (position[..., 2] <= nearest * (1.0 + DEPTH_TOLERANCE))
