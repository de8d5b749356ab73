"""Statistics of recovered reflectance maps: what a user checks first.

- :func:`visible_texels`: the texels a fitted head shows in its image(s);
- :func:`high_pass`: a map's detail (itself minus a blur of ``T/32`` texels);
- :func:`map_statistics`: per identity, the specular map's chroma and the detail energy of
  the diffuse and specular maps on the visible texels. Diffuse detail (brows, lips, spots)
  belongs in the diffuse map; a specular map that carries it, or colour, is a wrong
  decomposition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .camera import model_to_camera, project
from .footprint import blur
from .raster import interpolate_covered, rasterize

#: Rec. 709 luminance weights
LUMINANCE = (0.2126, 0.7152, 0.0722)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Luminance of linear ``rgb [...,3]`` → ``[...]``."""
    return rgb @ rgb.new_tensor(LUMINANCE)


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


#: the figures :func:`map_statistics` gives per identity
MAP_STATISTICS = ("specular_chroma", "diffuse_detail", "specular_detail", "diffuse_over_specular_detail")


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
