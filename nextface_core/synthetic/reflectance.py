"""A ground truth for reflectance: known diffuse, specular and roughness maps and light.

:func:`reflectance_truth` builds a face of a morphable model whose maps hold what a
decomposition must separate:

- **diffuse** ``[1,T,T,3]``: a statistical skin colour (the model's mean plus a random
  albedo sample) times detail at several scales — dark spots 2–4 texels wide on the inner
  face, brow-like dark bands above the eyes, redder lips, and a large soft gradient;
- **specular** ``[1,T,T,1]``: achromatic and spatially varying (a brighter T-zone);
- **roughness** ``[1,T,T,1]``: smooth and spatially varying (rougher cheeks);
- **light**: 9 SH bands, ambient plus a dominant soft light from the upper left, and a
  second, held-back light from the right for relighting.

Views are the input view(s) and a held-back novel view (the head turned by ``novel_yaw``),
used for validation only. :func:`evaluate_reflectance` measures a fit against the truth.

**The alignment allowed.** Albedo and light share a global per-channel scale: the image is
unchanged when both maps are multiplied by ``a_c`` and the light divided by ``a_c``. Every
figure is computed after that one alignment: ``a_c`` is the least-squares scale of the
recovered diffuse map onto the true one on the visible texels; it multiplies the recovered
diffuse and specular maps and divides the recovered light. Nothing else is aligned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..color import linear_to_srgb
from ..landmarks import LandmarkSet
from ..model import MorphableModel, combine
from ..params import SceneParameters
from ..mapstats import high_pass, luminance, visible_texels
from ..render import RenderOutput, Renderer, composite
from ..sh import sh_basis
from ..texture import TextureMapper
from .scene import on_background, projected_landmarks, synthetic_scene

#: brow landmarks (ibug-68, right then left) and the outer lip contour
_BROWS = ((17, 18, 19, 20, 21), (22, 23, 24, 25, 26))
_LIPS = tuple(range(48, 60))


@dataclass
class ReflectanceTruth:
    """Known scene of a reflectance benchmark.

    ``params`` the input view(s) (``B`` images, shared identity when B > 1);
    ``novel`` the same head seen from the held-back view under the held-back light
    ``novel_sh [1,bands²,3]``;
    maps ``diffuse [1,T,T,3]``, ``specular [1,T,T,1]``, ``roughness [1,T,T,1]``;
    ``detail [T,T]`` the diffuse detail (:func:`~nextface_core.mapstats.high_pass` of its
    luminance), which the specular and roughness maps must not correlate with.
    """

    model: MorphableModel
    params: SceneParameters
    novel: SceneParameters
    novel_sh: torch.Tensor
    diffuse: torch.Tensor
    specular: torch.Tensor
    roughness: torch.Tensor
    detail: torch.Tensor
    image_size: int

    @property
    def specular_rgb(self) -> torch.Tensor:
        return self.specular.expand(-1, -1, -1, 3)


def soft_light(direction: tuple[float, float, float], colour: tuple[float, float, float], ambient: float,
               bands: int = 9, sharpness: float = 0.12, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """SH ``[1,bands²,3]`` of an ambient term plus a soft light arriving *from* ``direction``
    (camera space, towards the light); band ``l`` falls off as ``exp(−sharpness·l²)``."""
    d = F.normalize(torch.tensor(direction, dtype=torch.float64), dim=0)
    basis = sh_basis(d[None], bands)[0]  # [K]
    band = torch.arange(bands).repeat_interleave(torch.arange(bands) * 2 + 1).to(torch.float64)
    lobe = basis * torch.exp(-sharpness * band * band)
    sh = lobe[:, None] * torch.tensor(colour, dtype=torch.float64)[None] * 2.5
    sh[0] += ambient * 2.0 * math.sqrt(math.pi)
    return sh[None].to(dtype)


def _texel_positions(mapper: TextureMapper, points: torch.Tensor) -> torch.Tensor:
    """Model-space position of every texel ``[T,T,3]`` (barycentric blend of ``points [N,3]``)."""
    return mapper.to_texture(points[None])[0]


def _polyline_distance(p: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
    """Distance of points ``p [...,3]`` to the polyline through ``line [L,3]`` (x, y only)."""
    a, b = line[:-1, :2], line[1:, :2]  # [S,2]
    q = p[..., None, :2]  # [...,1,2]
    ab = b - a
    t = (((q - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-9)).clamp(0.0, 1.0)
    return (q - (a + t[..., None] * ab)).norm(dim=-1).amin(-1)


def reflectance_truth(model: MorphableModel, texels: int = 256, image_size: int = 256, views: int = 1,
                      seed: int = 0, novel_yaw: float = 30.0) -> ReflectanceTruth:
    """The ground-truth scene (see the module docstring); ``views`` input views share one
    identity (yaw spread over ±25°), else one view at −15° yaw."""

    dt, dev = model.dtype, model.device
    g = torch.Generator().manual_seed(seed)
    base = synthetic_scene(model, image_size=image_size, seed=seed, bands=9)
    light = soft_light((-0.55, -0.6, -0.6), (1.0, 0.93, 0.85), ambient=0.35, dtype=dt).to(dev)
    mapper = TextureMapper.cached(model.uv, model.faces, texels)
    pos = _texel_positions(mapper, model.shape_mean)  # [T,T,3] mm
    x, y, z = pos.unbind(-1)

    # diffuse: statistical colour × detail at several scales
    skin = combine(model.diffuse_mean, model.diffuse_basis, model.diffuse_var, base.diffuse)[0].clamp(0.02, 1.0)
    diffuse = mapper.to_texture(skin[None])[0]  # [T,T,3]
    gradient = 0.85 + 0.3 * torch.sigmoid((y - 10.0) / 40.0)
    lms = model.landmarks["ibug68"]
    vertex_of = dict(zip(lms.landmark_index.tolist(), lms.vertex_index.tolist()))
    brow = torch.zeros_like(x)
    for side in _BROWS:
        line = model.shape_mean[[vertex_of[i] for i in side if i in vertex_of]]
        brow = torch.maximum(brow, torch.sigmoid((4.0 - _polyline_distance(pos, line + line.new_tensor([0, 3.0, 0]))) / 1.2))
    lips = [vertex_of[i] for i in _LIPS if i in vertex_of]
    lip = torch.sigmoid((4.0 - _polyline_distance(pos, model.shape_mean[lips + lips[:1]])) / 1.5) if len(lips) > 2 else 0 * x
    inner = (x.abs() < 55.0) & (y > -75.0) & (y < 65.0) & mapper.coverage
    candidates = inner.flatten().nonzero()[:, 0]
    n_spots = max(8, int(0.02 * candidates.numel() / 9))
    centres = candidates[torch.randint(candidates.numel(), (n_spots,), generator=g)]
    radii = 1.0 + 1.0 * torch.rand(n_spots, generator=g, dtype=dt)  # 2–4 texels wide
    rows, cols = torch.meshgrid(torch.arange(texels, dtype=dt), torch.arange(texels, dtype=dt), indexing="ij")
    spots = torch.zeros_like(x)
    for c, r in zip(centres.tolist(), radii.tolist()):  # a few hundred spots, once per benchmark
        d2 = (rows - c // texels) ** 2 + (cols - c % texels) ** 2
        spots = torch.maximum(spots, torch.exp(-d2 / (2 * (0.6 * r) ** 2)))
    factor = gradient * (1.0 - 0.55 * spots) * (1.0 - 0.6 * brow)
    diffuse = diffuse * factor[..., None]
    diffuse = diffuse * (1.0 - lip[..., None] * diffuse.new_tensor([-0.15, 0.35, 0.3]))
    diffuse = diffuse.clamp(0.01, 1.0)

    def gauss(cx: float, cy: float, sx: float, sy: float) -> torch.Tensor:
        return torch.exp(-((x - cx) / sx) ** 2 / 2 - ((y - cy) / sy) ** 2 / 2)

    tzone = torch.maximum(gauss(0.0, 45.0, 45.0, 18.0), gauss(0.0, 5.0, 10.0, 35.0))
    specular = (0.12 + 0.14 * tzone)[..., None]
    roughness = (0.32 + 0.2 * torch.maximum(gauss(-38.0, -15.0, 18.0, 18.0), gauss(38.0, -15.0, 18.0, 18.0)))[..., None]
    detail = high_pass(luminance(diffuse))

    params = _views(base, views, light)
    yaw = math.radians(novel_yaw)
    novel_sh = soft_light((0.7, -0.3, -0.65), (0.85, 0.92, 1.0), ambient=0.3, dtype=dt).to(dev)
    novel = replace(_turned(params, 0, yaw), sh=novel_sh)
    return ReflectanceTruth(model, params, novel, novel_sh, diffuse[None], specular[None], roughness[None], detail, image_size)


def _views(base: SceneParameters, views: int, light: torch.Tensor) -> SceneParameters:
    """``views`` images of one head (the first at the base pose when views = 1)."""
    yaws = [math.radians(-15.0)] if views == 1 else [math.radians(v) for v in torch.linspace(-25, 25, views).tolist()]
    one = replace(base, sh=light.expand(1, -1, -1).clone())
    one.rotation = one.rotation.clone()
    rows = [_turned(one, 0, yaw - float(one.rotation[0, 1])) for yaw in yaws]
    return replace(
        one,
        expression=torch.cat([r.expression for r in rows]),
        rotation=torch.cat([r.rotation for r in rows]),
        translation=torch.cat([r.translation for r in rows]),
        focal=torch.cat([r.focal for r in rows]),
        sh=light.expand(views, -1, -1).clone(),
    )


def _turned(params: SceneParameters, row: int, yaw: float) -> SceneParameters:
    """Image ``row`` of ``params`` with the head turned by ``yaw`` radians about its centre."""
    from ..camera import axis_angle_to_matrix, matrix_to_axis_angle

    r = axis_angle_to_matrix(params.rotation[row : row + 1])
    c, s = math.cos(yaw), math.sin(yaw)
    turn = r.new_tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])[None]
    return replace(
        params.with_first_identity(),
        expression=params.expression[row : row + 1],
        rotation=matrix_to_axis_angle(r @ turn),
        translation=params.translation[row : row + 1],
        focal=params.focal[row : row + 1],
        sh=params.sh[row : row + 1],
    )


def relative_novel(fitted: SceneParameters, truth: ReflectanceTruth) -> SceneParameters:
    """The fitted head seen from the held-back view: the camera moves as it does for the truth
    (the same model-space turn of image 0), so pose errors of the fit stay visible."""
    from ..camera import axis_angle_to_matrix, matrix_to_axis_angle

    r_in = axis_angle_to_matrix(truth.params.rotation[:1])
    r_nv = axis_angle_to_matrix(truth.novel.rotation)
    turn = r_in.transpose(-1, -2) @ r_nv  # model-space turn
    r_fit = axis_angle_to_matrix(fitted.rotation[:1])
    return replace(
        fitted.with_first_identity(),
        expression=fitted.expression[:1],
        rotation=matrix_to_axis_angle(r_fit @ turn),
        translation=fitted.translation[:1],
        focal=fitted.focal[:1],
        sh=truth.novel_sh.to(fitted.sh.dtype),
        diffuse_map=None, specular_map=None, roughness_map=None,
    )


def render_truth(truth: ReflectanceTruth, renderer: Renderer, params: SceneParameters | None = None,
                 samples: int = 64) -> tuple[torch.Tensor, RenderOutput]:
    """Render the truth (its input views, or ``params``) → images ``[B,H,W,3]`` linear on a
    dark gradient background, and the raw render."""
    p = truth.params if params is None else params
    out = render_maps(truth.model, p, truth.diffuse, truth.specular_rgb, truth.roughness, renderer, truth.image_size, samples)
    return on_background(out), out


def render_maps(model: MorphableModel, params: SceneParameters, diffuse: torch.Tensor, specular: torch.Tensor,
                roughness: torch.Tensor, renderer: Renderer, image_size: int, samples: int = 64, seed: int = 0) -> RenderOutput:
    """Render ``params`` with the given maps (``[S,T,T,C]``) at a square ``image_size``."""
    from ..fitting.scene import FaceScene

    b = params.batch_size
    pp = torch.full((b, 2), image_size / 2.0, dtype=model.dtype, device=model.device)
    scene = FaceScene(model, (image_size, image_size), pp, diffuse.shape[1])
    with torch.no_grad():
        return renderer.render(scene.render_inputs(params, diffuse, specular, roughness), scene.render_settings(samples, seed))


def truth_landmarks(truth: ReflectanceTruth) -> dict[str, LandmarkSet]:
    """The projected model landmarks of the input views, as a detector would give them."""
    return projected_landmarks(truth.model, truth.params, truth.image_size, [f"view{i}" for i in range(truth.params.batch_size)])


def _truth_visible(truth: ReflectanceTruth) -> torch.Tensor:
    """Texels ``[T,T]`` the truth shows in any input view (:func:`~nextface_core.mapstats.visible_texels`)."""
    from ..fitting.scene import FaceScene

    p = truth.params
    pp = torch.full((p.batch_size, 2), truth.image_size / 2.0, dtype=truth.model.dtype, device=truth.model.device)
    scene = FaceScene(truth.model, (truth.image_size,) * 2, pp, truth.diffuse.shape[1])
    return visible_texels(scene, p.with_first_identity())[0]


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def _psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    se = ((linear_to_srgb(a.clamp(0, 1)) - linear_to_srgb(b.clamp(0, 1))) ** 2 * mask).sum()
    mse = float(se / (3.0 * mask.sum()).clamp_min(1.0))
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def evaluate_reflectance(truth: ReflectanceTruth, params: SceneParameters, maps: tuple[torch.Tensor, ...],
                         images: torch.Tensor, renderer: Renderer, novel_renderer: Renderer | None = None,
                         samples: int = 64) -> dict[str, float]:
    """Figures of a fit against the truth (module docstring: the one alignment allowed).

    ``params`` the fitted scene of the input view(s); ``maps`` the recovered diffuse
    ``[1,T,T,3]``, specular ``[1,T,T,3 or 1]`` and roughness ``[1,T,T,1]``; ``images``
    the input images ``[B,H,W,3]`` (linear) the fit saw; ``renderer`` (the fit's) re-renders
    the input view; ``novel_renderer`` (default: the same) renders the truth and the fitted
    head in the held-back view under the held-back light. ``psnr_novel_true_maps_db`` is that
    relit novel view of the fitted head wearing the *true* maps: the bound the fitted
    geometry and pose set on ``psnr_novel_db``, whatever the maps.
    """
    novel_renderer = novel_renderer or renderer
    diffuse, specular, roughness = (m[:1].detach().to(truth.diffuse.dtype) for m in maps)
    t = truth.diffuse.shape[1]
    if diffuse.shape[1] != t:
        raise ValueError(f"the recovered maps have {diffuse.shape[1]}² texels, the truth {t}²")
    seen = _truth_visible(truth)
    dt, st, rt = truth.diffuse[0][seen], truth.specular[0][seen], truth.roughness[0][seen]
    df, sf, rf = diffuse[0][seen], specular[0][seen], roughness[0][seen]
    scale = (dt * df).sum(0) / (df * df).sum(0).clamp_min(1e-12)  # [3] the alignment
    df, sf = df * scale, sf * (scale if sf.shape[-1] == 3 else scale.mean())
    s_grey = sf.mean(-1, keepdim=True)
    spec_full = specular[0] * (scale if specular.shape[-1] == 3 else scale.mean())
    detail = truth.detail[seen]
    sh_fit = params.sh[:1].detach() / scale.to(params.sh.dtype)[None, None]
    sh_true = truth.params.sh[:1]
    aligned = (diffuse * scale, spec_full[None].expand(-1, -1, -1, 3) if spec_full.shape[-1] == 1 else spec_full[None], roughness)

    # re-renders: the input view(s), and the relit novel view
    fitted_in = render_maps(truth.model, replace(params, sh=params.sh.detach()), diffuse, _rgb(specular), roughness,
                            renderer, truth.image_size, samples)
    mask_in = fitted_in.mask * (images.sum(-1, keepdim=True) >= 0)
    novel_truth, novel_raw = render_truth(truth, novel_renderer, truth.novel, samples)
    novel_params = relative_novel(params, truth)
    novel_fit = render_maps(truth.model, novel_params, *aligned, novel_renderer, truth.image_size, samples)
    mask_nv = (novel_raw.mask > 0.5).to(novel_raw.mask.dtype) * (novel_fit.mask > 0.5).to(novel_raw.mask.dtype)
    # the fitted head wearing the true maps: what the fitted geometry and pose alone allow
    novel_geometry = render_maps(truth.model, novel_params, truth.diffuse, truth.specular_rgb, truth.roughness,
                                 novel_renderer, truth.image_size, samples)
    mask_geo = (novel_raw.mask > 0.5).to(novel_raw.mask.dtype) * (novel_geometry.mask > 0.5).to(novel_raw.mask.dtype)
    return {
        "diffuse_rmse": float((df - dt).pow(2).mean().sqrt()),
        "specular_rmse": float((s_grey - st).pow(2).mean().sqrt()),
        "specular_chroma": float((sf - s_grey).abs().mean()),
        "roughness_mae": float((rf - rt).abs().mean()),
        "specular_leakage": _corr(high_pass(luminance(_rgb(spec_full[None]))[0])[seen], detail),
        "roughness_leakage": _corr(high_pass(roughness[0, ..., 0])[seen], detail),
        "light_cosine": _corr_uncentred(sh_fit, sh_true.to(sh_fit.dtype)),
        "psnr_input_db": _psnr(composite(fitted_in, images), images, mask_in),
        "psnr_novel_db": _psnr(on_background(novel_fit), novel_truth, mask_nv),
        "psnr_novel_true_maps_db": _psnr(on_background(novel_geometry), novel_truth, mask_geo),
        "visible_texels": int(seen.sum()),
        "alignment": [round(float(s), 4) for s in scale],
    }


def _rgb(t: torch.Tensor) -> torch.Tensor:
    return t.expand(*t.shape[:-1], 3) if t.shape[-1] == 1 else t


def _corr_uncentred(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten(), b.flatten()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


#: the issue's targets, per figure: (comparison, value)
TARGETS = {
    "diffuse_rmse": ("<=", 0.03),
    "specular_rmse": ("<=", 0.03),
    "specular_chroma": ("<=", 0.01),
    "roughness_mae": ("<=", 0.10),
    "specular_leakage": ("|<=|", 0.15),
    "roughness_leakage": ("|<=|", 0.15),
    "light_cosine": (">=", 0.95),
    "psnr_input_db": (">=", 36.0),
    "psnr_novel_db": (">=", 30.0),
}
#: the relit novel view's target when three views share the identity
MULTIVIEW_NOVEL_TARGET = (">=", 33.0)


def meets(name: str, value: float, target: tuple[str, float] | None = None) -> bool:
    """Whether figure ``name`` meets its target (``TARGETS`` unless given)."""
    op, bound = target or TARGETS[name]
    return {"<=": value <= bound, ">=": value >= bound, "|<=|": abs(value) <= bound}[op]
