"""Statistics of recovered reflectance maps: what a user checks first.

- :func:`visible_texels`: the texels a fitted head shows in its image(s);
- :func:`high_pass`: a map's detail (itself minus a blur of ``T/32`` texels);
- :func:`texel_footprint`: how many texels a pixel of the photo spans;
- :func:`map_statistics`: per identity, the specular map's chroma and the detail energy of
  the diffuse and specular maps on the visible texels. Diffuse detail (brows, lips, spots)
  belongs in the diffuse map; a specular map that carries it, or colour, is a wrong
  decomposition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .camera import model_to_camera, project
from .raster import interpolate_covered, rasterize

#: Rec. 709 luminance weights
LUMINANCE = (0.2126, 0.7152, 0.0722)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Luminance of linear ``rgb [...,3]`` → ``[...]``."""
    return rgb @ rgb.new_tensor(LUMINANCE)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``x [T,T]`` (``sigma`` in texels, reflective borders)."""
    r = max(1, int(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma * sigma))
    k = k / k.sum()
    y = F.pad(x[None, None], (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return F.conv2d(y, k.view(1, 1, -1, 1))[0, 0]


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """Detail of a map channel ``x [T,T]``: itself minus a Gaussian blur of ``T/32`` texels
    (spots, brows and lips pass; broad gradients and a T-zone do not)."""
    return x - blur(x, max(1.0, x.shape[-1] / 32.0))


def visible_texels(scene, params, coverage: torch.Tensor | None = None) -> torch.Tensor:
    """Texels ``[S,T,T]`` bool that any image of identity ``s`` shows: those a covered pixel
    samples, and their 8 neighbours (bilinear lookups blend them), inside a uv triangle.

    ``scene`` a :class:`~nextface_core.fitting.scene.FaceScene`, ``params`` its
    :class:`~nextface_core.params.SceneParameters` (``S`` = 1 when the identity is shared).
    """
    t = scene.texture.resolution
    b = params.batch_size
    with torch.no_grad():
        cam = model_to_camera(scene.vertices(params), params.rotation, params.translation)
        frags = rasterize(project(cam, params.focal, scene.principal_point), cam[..., 2], scene.faces32, scene.image_size)
        uv = interpolate_covered(scene.model.uv[None].expand(b, -1, -1).to(cam.dtype), frags)  # [M,2]
    rows = params.shape.shape[0]  # 1 when the identity is shared: every image's texels count
    h, w = scene.image_size
    which = frags.covered // (h * w) if rows > 1 else torch.zeros_like(frags.covered)
    idx = (uv * t).long().clamp(0, t - 1)
    seen = torch.zeros(rows, t, t, dtype=cam.dtype, device=cam.device)
    seen[which, idx[:, 1], idx[:, 0]] = 1.0
    seen = F.max_pool2d(seen[:, None], 3, stride=1, padding=1)[:, 0] > 0
    mask = scene.texture.coverage if coverage is None else coverage
    return seen & mask.to(seen.device)[None]


def texel_footprint(scene, params) -> float:
    """Texels per pixel (linear) where the fitted head is seen: ``sqrt(uv area in texels /
    screen area in pixels)`` over the front-facing triangles that cover a pixel, in the
    sharpest image of the batch. Above 1 the photo cannot constrain every texel."""
    t = scene.texture.resolution
    faces = scene.model.faces
    uv = scene.model.uv.to(torch.float64) * t
    a, b, c = (uv[faces[:, k]] for k in range(3))
    uv_area = ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]).abs() / 2  # [F]
    with torch.no_grad():
        cam = model_to_camera(scene.vertices(params), params.rotation, params.translation)
        pix = project(cam, params.focal, scene.principal_point)
        frags = rasterize(pix, cam[..., 2], scene.faces32, scene.image_size)
    best = float("inf")
    for i in range(params.batch_size):
        hit = torch.unique(frags.face_index[i][frags.face_index[i] >= 0])
        if hit.numel() == 0:
            continue
        p = pix[i].to(torch.float64)
        pa, pb, pc = (p[faces[hit, k]] for k in range(3))
        screen = ((pb - pa)[:, 0] * (pc - pa)[:, 1] - (pb - pa)[:, 1] * (pc - pa)[:, 0]).abs() / 2
        best = min(best, float((uv_area[hit].sum() / screen.sum().clamp_min(1e-9)).sqrt()))
    return best if best < float("inf") else 1.0


def map_statistics(diffuse: torch.Tensor, specular: torch.Tensor, seen: torch.Tensor) -> list[dict[str, float]]:
    """Per identity ``s``: ``specular_chroma`` (mean |channel − grey| of the specular map),
    ``diffuse_detail`` and ``specular_detail`` (mean squared :func:`high_pass` of each map's
    luminance) and their ratio ``diffuse_over_specular_detail``, all on the texels ``seen
    [S,T,T]``; maps ``[S,T,T,3]``."""
    out = []
    for s in range(diffuse.shape[0]):
        m = seen[s]
        if not bool(m.any()):
            out.append({})
            continue
        spec = specular[s]
        chroma = (spec - spec.mean(-1, keepdim=True)).abs().mean(-1)[m].mean()
        d = high_pass(luminance(diffuse[s]))[m].pow(2).mean()
        sp = high_pass(luminance(spec))[m].pow(2).mean()
        out.append({
            "specular_chroma": float(chroma),
            "diffuse_detail": float(d),
            "specular_detail": float(sp),
            "diffuse_over_specular_detail": float(d / sp.clamp_min(1e-12)),
        })
    return out
