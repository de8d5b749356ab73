"""Dense landmarks: where a detector's points lie on a morphable model's surface, measured
by NextFace itself (``nextface model calibrate-landmarks``).

No published correspondence ties MediaPipe's 478-point face mesh to the Basel meshes (or to
any third-party model), so the calibration measures it:

1. **Texture** (:func:`photo_texture`): a photo is fitted with the model's own sparse
   landmarks (stage 1 only) and projected onto the fitted surface, texel by texel, in the
   model's uv layout; texels the photo does not show take their mirror texel's colour (the
   layouts are left–right symmetric), or the mean skin colour. The face then carries the
   photo's eyes, brows, lips and shading wherever the model's surface is.
2. **Renders** (:func:`calibration_views`): the textured model at a grid of yaws (±45°) and
   pitches (±20°), each with a random identity and expression of the model, over a plain
   background.
3. **Detection and back-projection** (:func:`back_project`): the detector runs on every render;
   each detected point is put back on the known mesh with the rasteriser (:mod:`.raster`):
   the triangle under it and the point's perspective-correct barycentrics (exact: the surface
   point projects back onto the detection).
4. **Combination** (:func:`combine`): the surface points of one landmark over all renders, each
   taken to the mean shape (same triangle and barycentrics), are reduced to their
   coordinate-wise median snapped onto the nearest of their triangles; the median distance
   of the samples from it is the landmark's spread (mm), which gives its weight
   ``found / (1 + (spread / s₀)²)``, with ``found`` the fraction of renders in which it lay on
   the surface and ``s₀`` the median spread. A landmark spread more than
   :data:`CONTOUR_SPREAD` times ``s₀`` does not stay on one surface point (a silhouette
   point, such as MediaPipe's face oval on the cheeks under yaw): it becomes a *contour*
   landmark whose candidates are the vertices it landed on, matched per pose by the fit's
   dynamic contour. Landmarks the surface rarely holds (on it in fewer than :data:`MIN_SEEN`
   of the renders) are left out, as are points that move independently of the face
   (MediaPipe's irises follow the gaze, which no model has).

The result is a :class:`~nextface_core.dense_landmarks.Calibration`, stored and attached to
the model by :mod:`nextface_core.dense_landmarks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .camera import model_to_camera, project
from .dense_landmarks import SCHEMA, Calibration, model_key
from .errors import InputError
from .landmarks import LandmarkDetector
from .model import MorphableModel
from .params import SceneParameters
from .raster import rasterize
from .render import Renderer, composite

#: MediaPipe's 10 iris points (468–477) follow the gaze, not the face surface: never calibrated
FREE_POINTS = tuple(range(468, 478))
#: a landmark on the surface in fewer than this fraction of the renders is left out
MIN_SEEN = 0.3
#: a spread above this many times the median spread makes a landmark a contour landmark
CONTOUR_SPREAD = 3.0
#: the weight of a contour landmark: its spread lies along the silhouette, which the dynamic
#: contour follows, but its candidates are vertices, not the exact surface point
CONTOUR_WEIGHT = 0.25
#: at most this many candidate vertices per contour landmark (the most frequent)
CONTOUR_CANDIDATES = 24
#: the texture's photo is fitted at least this large (pixels, longer side), so the texture keeps
#: the photo's detail (against 256 px, the astronaut's stage-1 error did not measurably change: 1.31 % IOD both)
PHOTO_RESOLUTION = 512
#: a texel is seen in the photo when its depth is within this (model units, mm) of the nearest surface's
SEEN_DEPTH = 6.0


# -- the texture ------------------------------------------------------------------------


def photo_texture(model: MorphableModel, image: torch.Tensor, params: SceneParameters, principal_point: torch.Tensor,
                  resolution: int) -> torch.Tensor:
    """The photo ``image [H,W,3]`` (linear RGB) projected onto the model posed by ``params``
    (one image fitted to it; ``principal_point [1,2]``), as a linear-RGB texture ``[1,T,T,3]``
    in the model's uv layout.

    A texel is seen when its surface point is the nearest surface at its pixel (depth within
    :data:`SEEN_DEPTH` of the rasterised depth there). Texels the photo does not show take
    their mirror texel's colour when that one is seen, else the mean colour of the seen texels.
    """
    from .fitting.scene import FaceScene

    h, w = image.shape[:2]
    pp = principal_point
    scene = FaceScene(model, (h, w), pp, resolution)
    mapper = scene.texture
    with torch.no_grad():
        verts = scene.vertices(params)
        cam = model_to_camera(verts, params.rotation, params.translation)
        depth = rasterize(project(cam, params.focal, pp), cam[..., 2], scene.faces32, (h, w)).depth[0]  # [H,W]
        texel_points = (cam[0][mapper.texel_vertices] * mapper.texel_weights[..., None].to(cam.dtype)).sum(1)  # [T·T,3]
        pix = project(texel_points[None], params.focal, pp)[0]
        grid = torch.stack([pix[:, 0] / w * 2.0 - 1.0, pix[:, 1] / h * 2.0 - 1.0], -1)[None, None]
        colour = F.grid_sample(image.permute(2, 0, 1)[None], grid, mode="bilinear", align_corners=False)[0, :, 0].T
        x = pix[:, 0].floor().long().clamp(0, w - 1)
        y = pix[:, 1].floor().long().clamp(0, h - 1)
        inside = (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h)
        surface = depth[y, x]
        seen = inside & (surface > 0) & ((texel_points[:, 2] - surface).abs() < SEEN_DEPTH) & mapper.coverage.reshape(-1)
        colour = colour.reshape(resolution, resolution, 3)
        seen = seen.reshape(resolution, resolution)
        mirror, mirror_seen = colour.flip(1), seen.flip(1)  # u → 1 − u
        mean = colour[seen].mean(0) if bool(seen.any()) else colour.new_full((3,), 0.5)
        filled = torch.where(seen[..., None], colour, torch.where(mirror_seen[..., None], mirror, mean))
    return filled[None]


def calibration_views(model: MorphableModel, image_size: int, count: int, seed: int = 0,
                      bands: int = 3) -> SceneParameters:
    """``count`` views ``[count]`` of the model: yaws spread over ±45°, pitches over ±20°
    (a golden-ratio sequence, so any count covers the grid), small rolls, random identities
    (0.8 sd) and expressions (0.6 sd), under light from the camera on top of ambient light."""
    g = torch.Generator().manual_seed(seed)
    dt, dev = model.dtype, model.device

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    i = torch.arange(count, dtype=torch.float64)
    yaw = math.radians(45.0) * (2.0 * ((i + 0.5) / count) - 1.0)
    pitch = math.radians(20.0) * (2.0 * torch.frac(0.5 + i * 0.6180339887) - 1.0)
    roll = math.radians(5.0) * randn(count).clamp(-2.0, 2.0)
    focal = torch.full((count,), 2.0 * image_size, dtype=dt, device=dev)
    width = float(model.shape_mean[:, 0].max() - model.shape_mean[:, 0].min())
    params = SceneParameters.neutral(count, model.n_shape, model.n_expression, model.n_albedo, bands, focal,
                                     distance=2.0 * image_size * width / (0.55 * image_size), ambient=0.75)
    params.shape = (0.8 * randn(count, model.n_shape)).to(dev, dt)
    params.expression = (0.6 * randn(count, model.n_expression)).to(dev, dt)
    params.rotation = torch.stack([pitch, yaw, roll], -1).to(dev, dt)
    if bands >= 2:  # light from the camera: the camera-space direction (0, 0, −1) towards the viewer
        params.sh[:, 2] = 0.35 * 2.0 * math.sqrt(math.pi / 3.0)
    return params


def render_views(model: MorphableModel, renderer: Renderer, texture: torch.Tensor, params: SceneParameters,
                 image_size: int) -> tuple[list[np.ndarray], torch.Tensor]:
    """The textured renders ``[S,S,3]`` uint8 over a grey background, and their camera-space
    vertices ``[B,N,3]``."""
    from .fitting.outputs import to_uint8
    from .fitting.scene import FaceScene

    b = params.batch_size
    pp = torch.full((b, 2), image_size / 2.0, dtype=model.dtype, device=model.device)
    scene = FaceScene(model, (image_size, image_size), pp, texture.shape[1])
    black = torch.zeros_like(texture)
    rough = scene.constant_roughness(1, 0.5)
    with torch.no_grad():
        inputs = scene.render_inputs(params, texture, black, rough)
        out = renderer.render(inputs, scene.render_settings(1))
        grey = torch.full_like(out.image, 0.18)
        image = composite(out, grey)
    return [to_uint8(image[k]) for k in range(b)], inputs.vertices


# -- back-projection --------------------------------------------------------------------


def back_project(points: torch.Tensor, camera_vertices: torch.Tensor, faces: torch.Tensor, focal: torch.Tensor,
                 principal_point: torch.Tensor, image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The surface point under each pixel position.

    ``points [B,L,2]`` pixels, ``camera_vertices [B,N,3]``, ``faces [F,3]``, ``focal [B]``,
    ``principal_point [B,2]`` → ``face [B,L]`` (−1: no surface there) and perspective-correct
    barycentrics ``[B,L,3]``, so that ``Σ w_k v_k`` of the face's camera vertices projects
    onto the point. The candidates are the visible faces of the 3×3 pixels around the point;
    the nearest one whose screen triangle contains it wins.
    """
    b, n_points = points.shape[:2]
    h, w = image_size
    pix = project(camera_vertices, focal, principal_point)
    fragments = rasterize(pix, camera_vertices[..., 2], faces.to(torch.int32), image_size)
    face_index = F.pad(fragments.face_index, (1, 1, 1, 1), value=-1)  # [B,H+2,W+2]
    cx = points[..., 0].floor().long().clamp(-1, w) + 1
    cy = points[..., 1].floor().long().clamp(-1, h) + 1
    offsets = torch.tensor([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], device=points.device)
    ys = (cy[..., None] + offsets[:, 0]).clamp(0, h + 1)
    xs = (cx[..., None] + offsets[:, 1]).clamp(0, w + 1)
    batch = torch.arange(b, device=points.device)[:, None, None].expand_as(ys)
    cand = face_index[batch, ys, xs]  # [B,L,9]
    tri = faces[cand.clamp_min(0)]  # [B,L,9,3]
    flat = tri.reshape(b, -1)
    screen = pix.gather(1, flat[..., None].expand(-1, -1, 2)).reshape(*tri.shape, 2)  # [B,L,9,3,2]
    depth = camera_vertices[..., 2].gather(1, flat).reshape(tri.shape)  # [B,L,9,3]
    a, bb, c = screen.unbind(3)
    p = points[:, :, None].to(screen.dtype)
    area = (bb - a)[..., 0] * (c - a)[..., 1] - (bb - a)[..., 1] * (c - a)[..., 0]
    safe = torch.where(area.abs() > 1e-12, area, torch.ones_like(area))

    def cross(u: torch.Tensor, v: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return (v - u)[..., 0] * (q - u)[..., 1] - (v - u)[..., 1] * (q - u)[..., 0]

    screen_bary = torch.stack([cross(bb, c, p), cross(c, a, p), cross(a, bb, p)], -1) / safe[..., None]
    inside = (cand >= 0) & (area.abs() > 1e-12) & (screen_bary.min(-1).values >= -1e-6)
    perspective = screen_bary.clamp_min(0.0) / depth
    bary = perspective / perspective.sum(-1, keepdim=True).clamp_min(1e-30)
    z = 1.0 / perspective.sum(-1).clamp_min(1e-30)
    z = torch.where(inside, z, torch.full_like(z, math.inf))
    best = z.argmin(-1)  # [B,L]
    hit = inside.gather(2, best[..., None])[..., 0]
    face = torch.where(hit, cand.gather(2, best[..., None])[..., 0], torch.full_like(best, -1))
    weights = bary.gather(2, best[..., None, None].expand(-1, -1, 1, 3))[:, :, 0]
    return face, weights


# -- combination ------------------------------------------------------------------------


def combine(samples_face: torch.Tensor, samples_bary: torch.Tensor, found: torch.Tensor, model: MorphableModel,
            landmarks: torch.Tensor, key: str) -> Calibration:
    """One surface point per landmark from its samples over R renders.

    ``samples_face [R,L]`` (−1: not on the surface), ``samples_bary [R,L,3]``, ``found [R]``
    (the detector found the face), ``landmarks [L]`` their schema indices. See the module
    docstring for the rule.
    """
    mean = model.shape_mean.to(torch.float64)
    faces = model.faces
    on = (samples_face >= 0) & found[:, None]
    renders = int(found.sum())
    corners = mean[faces[samples_face.clamp_min(0)]]  # [R,L,3,3]
    pos = (corners * samples_bary.to(torch.float64)[..., None]).sum(2)  # [R,L,3]
    masked = torch.where(on[..., None], pos, torch.full_like(pos, math.nan))
    centre = masked.nanmedian(dim=0).values  # [L,3]
    dist = (pos - centre[None]).norm(dim=-1)
    spread = torch.where(on, dist, torch.full_like(dist, math.nan)).nanmedian(dim=0).values  # [L]
    frac = on.sum(0).double() / max(renders, 1)
    seen = frac >= MIN_SEEN
    s0 = max(float(spread[seen].median()) if bool(seen.any()) else 1.0, 1e-3)
    fixed = seen & (spread <= CONTOUR_SPREAD * s0)
    contour_mask = seen & ~fixed
    face, bary = _snap(centre, samples_face, on, mean, faces)
    weight = frac / (1.0 + (spread / s0) ** 2)
    contour: dict[int, torch.Tensor] = {}
    for lm in contour_mask.nonzero()[:, 0].tolist():  # once per unstable landmark, at calibration time
        rows = on[:, lm]
        nearest = faces[samples_face[rows, lm]].gather(1, samples_bary[rows, lm].argmax(-1, keepdim=True))[:, 0]
        values, counts = torch.unique(nearest, return_counts=True)
        order = counts.argsort(descending=True, stable=True)[:CONTOUR_CANDIDATES]
        contour[int(landmarks[lm])] = values[order].sort().values
    return Calibration(
        schema=SCHEMA,
        key=key,
        landmarks=landmarks[fixed].cpu(),
        faces=face[fixed].cpu(),
        barycentric=bary[fixed].cpu(),
        spread_mm=spread[fixed].cpu(),
        weight=weight[fixed].cpu(),
        contour={k: v.cpu() for k, v in contour.items()},
        contour_weight=CONTOUR_WEIGHT,
        renders=renders,
    )


def _snap(centre: torch.Tensor, samples_face: torch.Tensor, on: torch.Tensor, mean: torch.Tensor,
          faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The point nearest ``centre [L,3]`` on the triangles its samples landed on
    (``samples_face [R,L]``, valid where ``on [R,L]``) → face ``[L]``, barycentrics ``[L,3]``."""
    cand = samples_face.T.clamp_min(0)  # [L,R]
    tri = mean[faces[cand]]  # [L,R,3,3]
    bary = _closest_barycentric(tri, centre[:, None].expand(-1, cand.shape[1], -1))
    point = (tri * bary[..., None]).sum(2)
    dist = (point - centre[:, None]).norm(dim=-1)
    dist = torch.where(on.T, dist, torch.full_like(dist, math.inf))
    best = dist.argmin(1)
    rows = torch.arange(cand.shape[0], device=cand.device)
    return cand[rows, best], bary[rows, best]


def _closest_barycentric(tri: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Barycentrics ``[...,3]`` of the point of triangle ``tri [...,3,3]`` nearest ``q [...,3]``:
    the projection onto its plane when inside, else the nearest point of its three edges."""
    a, b, c = tri.unbind(-2)
    normal = torch.linalg.cross(b - a, c - a)
    area2 = normal.square().sum(-1).clamp_min(1e-30)
    flat = q - ((q - a) * normal).sum(-1, keepdim=True) * normal / area2[..., None]
    wa = (torch.linalg.cross(c - b, flat - b) * normal).sum(-1) / area2
    wb = (torch.linalg.cross(a - c, flat - c) * normal).sum(-1) / area2
    inside = torch.stack([wa, wb, 1.0 - wa - wb], -1)
    best, best_dist = inside, torch.where(inside.min(-1).values >= 0, torch.zeros_like(wa), torch.full_like(wa, math.inf))
    for i, j in ((0, 1), (1, 2), (2, 0)):  # the three edges
        p, e = tri[..., i, :], tri[..., j, :] - tri[..., i, :]
        t = (((q - p) * e).sum(-1) / e.square().sum(-1).clamp_min(1e-30)).clamp(0.0, 1.0)
        d = (p + t[..., None] * e - q).norm(dim=-1)
        w = torch.zeros_like(inside)
        w[..., i], w[..., j] = 1.0 - t, t
        better = d < best_dist
        best = torch.where(better[..., None], w, best)
        best_dist = torch.where(better, d, best_dist)
    return best


# -- the whole calibration --------------------------------------------------------------


@dataclass
class CalibrationRun:
    """A calibration and what it was measured on: ``detected [R]`` renders the detector found
    a face in, ``fixed``/``contour``/``left_out`` landmark counts."""

    calibration: Calibration
    renders: int
    detected: int
    fixed: int
    contour: int
    left_out: int


def calibrate(model: MorphableModel, renderer: Renderer, detector: LandmarkDetector, texture: torch.Tensor,
              views: int = 48, image_size: int = 320, seed: int = 0, chunk: int = 8) -> CalibrationRun:
    """Render ``model`` with ``texture [1,T,T,3]`` in ``views`` poses (:func:`calibration_views`),
    detect, back-project and combine (:func:`combine`). Rendered ``chunk`` views at a time."""
    params = calibration_views(model, image_size, views, seed)
    faces, barys, found = [], [], []
    pp = torch.full((views, 2), image_size / 2.0, dtype=model.dtype, device=model.device)
    for start in range(0, views, chunk):  # a few batches of renders, not a loop in a hot path
        rows = list(range(start, min(start + chunk, views)))
        part = _select(params, rows)
        images, cam = render_views(model, renderer, texture, part, image_size)
        sets = detector.detect(images, [f"view{k}" for k in rows])
        if SCHEMA not in sets:
            raise InputError(f"detector '{detector.name}' gives {sorted(sets)}, not {SCHEMA}",
                             "calibrate with --landmarks mediapipe (the detector of the 478-point face mesh)")
        lms = sets[SCHEMA]
        face, bary = back_project(lms.points.to(cam.device, torch.float64), cam.double(), model.faces,
                                  part.focal.double(), pp[rows].double(), (image_size, image_size))
        faces.append(face)
        barys.append(bary)
        found.append(lms.found.to(cam.device))
    samples_face, samples_bary, found_all = torch.cat(faces), torch.cat(barys), torch.cat(found)
    keep = torch.tensor([i for i in range(samples_face.shape[1]) if i not in FREE_POINTS], dtype=torch.long)
    calibration = combine(samples_face[:, keep], samples_bary[:, keep], found_all, model, keep, model_key(model))
    fixed, contour = calibration.landmarks.numel(), len(calibration.contour)
    return CalibrationRun(calibration, views, int(found_all.sum()), fixed, contour, int(keep.numel()) - fixed - contour)


def _select(params: SceneParameters, rows: list[int]) -> SceneParameters:
    """Views ``rows`` of a batch with per-view identities."""
    return SceneParameters.cat([params.image(i) for i in rows])


def texture_from_photo(model: MorphableModel, photo: np.ndarray, config, registry, resolution: int = 512) -> torch.Tensor:
    """:func:`photo_texture` of ``photo`` (``[H,W,3]`` uint8 sRGB) after a stage-1 fit of it
    with the model's sparse landmarks (``config``'s detector), at :data:`PHOTO_RESOLUTION`
    pixels or more → ``[1,T,T,3]``."""
    from .fitting import Fitter

    sparse = config.with_overrides({"fit.stages": ["landmarks"], "landmarks.dense": False, "run.device": "cpu",
                                    "run.max_resolution": max(config.run.max_resolution, PHOTO_RESOLUTION)})
    result = Fitter(sparse, registry=registry, model=model).fit([photo], ["texture"])
    batch = result.batch
    h, w = batch.sizes[0]
    return photo_texture(result.model, batch.images[0, :h, :w], result.params, batch.principal_point, resolution)


def default_photo() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins, a public-domain NASA portrait), the default
    texture source; an :class:`InputError` when scikit-image is not installed."""
    try:
        from skimage import data
    except ImportError:
        raise InputError("no --photo given and scikit-image (whose astronaut photo is the default) is not installed",
                         "pass --photo FILE (a frontal portrait), or pip install scikit-image") from None
    return np.ascontiguousarray(data.astronaut())
