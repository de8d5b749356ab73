"""How much of a texture map one photo pixel sees, and the filter that renders a map so.

A renderer looks a map up once per pixel (bilinear). Where a pixel spans several texels,
only the texels next to each pixel's sample get a gradient, and a fitted map comes out as
a lattice of dots; a camera pixel (and a ray tracer's box-filtered samples) instead
averages the texture over its footprint.

- :func:`texel_footprint`: texels per pixel (linear) over the visible head;
- :func:`footprint_sigma`: the Gaussian blur (texels) equal to averaging over a footprint;
- :func:`blur`: that blur, differentiable.

One footprint for the whole head: a per-texel one (from each vertex's uv and screen areas)
was tried on the astronaut photo and blurred the dense regions of the UV layout too much
(27.5 dB against 28.7 dB, the maps no better).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .camera import model_to_camera, project
from .raster import rasterize


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of the last two dimensions of ``x [...,T,T]`` (``sigma`` in texels,
    reflective borders); differentiable; ``x`` itself when ``sigma`` is 0."""
    if sigma <= 0.0:
        return x
    r = max(1, int(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma * sigma))
    k = k / k.sum()
    y = F.pad(x.reshape(-1, 1, *x.shape[-2:]), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return F.conv2d(y, k.view(1, 1, -1, 1)).reshape(x.shape)


def footprint_sigma(footprint: float) -> float:
    """The Gaussian blur (texels) that turns one bilinear lookup per pixel into the average
    over the pixel's footprint: a box of ``f`` texels has variance ``f²/12``, the bilinear
    lookup already contributes ``1/6``; 0 when the footprint is within about a texel."""
    return math.sqrt(max(0.0, footprint * footprint / 12.0 - 1.0 / 6.0))


def _areas(scene, params) -> tuple[torch.Tensor, torch.Tensor]:
    """``uv_area [F]`` in texels² and ``screen_area [B,F]`` in pixels² of the triangles that
    cover a pixel (0 for the others)."""
    t = scene.texture.resolution
    faces = scene.model.faces.long()
    uv = scene.model.uv.to(torch.float64) * t
    a, b, c = (uv[faces[:, k]] for k in range(3))
    uv_area = ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]).abs() / 2
    with torch.no_grad():
        cam = model_to_camera(scene.vertices(params), params.rotation, params.translation)
        pix = project(cam, params.focal, scene.principal_point).to(torch.float64)
        frags = rasterize(pix, cam[..., 2], scene.faces32, scene.image_size)
    screen = torch.zeros(params.batch_size, faces.shape[0], dtype=torch.float64, device=pix.device)
    for i in range(params.batch_size):
        hit = torch.unique(frags.face_index[i][frags.face_index[i] >= 0])
        pa, pb, pc = (pix[i][faces[hit, k]] for k in range(3))
        screen[i, hit] = ((pb - pa)[:, 0] * (pc - pa)[:, 1] - (pb - pa)[:, 1] * (pc - pa)[:, 0]).abs() / 2
    return uv_area, screen


def texel_footprint(scene, params) -> float:
    """Texels per pixel (linear) where the fitted head is seen: ``sqrt(uv area in texels /
    screen area in pixels)`` over the triangles that cover a pixel, in the sharpest image of
    the batch; 1 when nothing is seen. Above 1 the photo cannot constrain every texel.

    ``scene`` a :class:`~nextface_core.fitting.scene.FaceScene`, ``params`` its parameters."""
    uv_area, screen = _areas(scene, params)
    seen = screen.sum(1) > 0
    ratios = (screen.new_tensor([float(uv_area[s > 0].sum()) for s in screen]) / screen.sum(1).clamp_min(1e-9)).sqrt()
    return float(ratios[seen].min()) if bool(seen.any()) else 1.0
