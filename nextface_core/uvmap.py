"""A left–right mirror-symmetric UV parametrisation computed from a model's own mean shape.

Any morphable model with an open face mask (Basel, FLAME's face region, ...) can use it;
no third-party UV file is needed. Method:

1. Holes (eyes, mouth) are closed for the solve by a virtual vertex per hole, so the mesh
   is a topological disc.
2. The outer boundary goes to a circle by arc length, starting at the top of the midline,
   counter-clockwise as seen from the front. "Ears" (boundary vertices in a single triangle,
   the corners of a staircase outline) are left out of that polygon, since on a convex
   boundary their triangle would collapse to a sliver, and are placed afterwards outside
   the chord of their triangle with its 3D shape.
3. The interior solves a Tutte/Floater system with positive mean-value weights. With a
   convex boundary and positive weights the map is provably injective (Floater 2003,
   "Mean value coordinates"), so no triangle flips.
4. Stretch is reduced by Yoshizawa, Belyaev & Seidel's reweighting ("A fast and simple
   stretch-minimizing mesh parameterization", SMI 2004): ``w_ij /= sigma(v_j)``. Weights
   stay positive, so step 3's guarantee holds at every iteration.
5. The result is symmetrised through the vertex symmetry map (``uv[s(i)] = (1-u_i, v_i)``),
   so a horizontal flip of a texture is the mirrored face, and scaled to fill the square
   with a margin. Flips and boundary crossings are counted after this step
   (:func:`uv_quality`) and reported.

Axes: model x is left–right (the mirror axis), y up. ``u`` grows with x (the subject's right
side, at negative x, is on the left of the texture, as in a frontal photo); ``v`` is the
texture row counted from the top, so the forehead is at small ``v``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .mesh import MeshTopology, symmetry_map

#: fraction of the texture left empty on each side, so bilinear lookups stay inside
DEFAULT_MARGIN = 0.01
#: changes whenever the method's output changes, so caches of computed layouts invalidate
METHOD_VERSION = 3


@dataclass(frozen=True)
class UVQuality:
    """How good a parametrisation is.

    ``flipped``: triangles whose uv orientation disagrees with the majority (plus degenerate
    ones); must be 0. ``boundary_crossings``: pairs of uv boundary edges that cross; with no
    flips and no crossings the map is injective (a locally injective map of a disc whose
    boundary stays simple does not overlap itself). ``area_distortion``: the 3D-area-weighted mean of
    ``|log2(uv area share / 3D area share)|`` (0 = every triangle keeps its share of the
    texture; 1 = on average a factor 2 off). ``area_ratio_p5`` / ``area_ratio_p95``: the 5th
    and 95th percentiles of that ratio. ``l2_stretch``: Sander et al.'s L2 stretch of the
    uv→surface map with areas normalised (1 = isometric up to scale). ``symmetry_error``:
    max over vertices of ``|uv[s(i)] - (1 - u_i, v_i)|`` in uv units.
    """

    flipped: int
    boundary_crossings: int
    area_distortion: float
    area_ratio_p5: float
    area_ratio_p95: float
    l2_stretch: float
    symmetry_error: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "flipped": self.flipped,
            "boundary_crossings": self.boundary_crossings,
            "area_distortion": self.area_distortion,
            "area_ratio_p5": self.area_ratio_p5,
            "area_ratio_p95": self.area_ratio_p95,
            "l2_stretch": self.l2_stretch,
            "symmetry_error": self.symmetry_error,
        }


def symmetric_uv(
    mean: torch.Tensor,
    faces: torch.Tensor,
    symmetry: torch.Tensor | None = None,
    *,
    stretch_iterations: int = 8,
    margin: float = DEFAULT_MARGIN,
) -> torch.Tensor:
    """Mirror-symmetric, injective, low-stretch uv ``[N,2]`` in ``[margin, 1-margin]``.

    ``mean [N,3]`` model-space mean shape centred on the mirror plane x = 0 (y up, +z out of
    the face); ``faces [F,3]``; ``symmetry [N]`` the mirror vertex of each vertex (computed
    from ``mean`` when None). The mesh must be an open surface (at least one boundary).
    """
    points = mean.detach().cpu().double().numpy()
    f = faces.detach().cpu().numpy().astype(np.int64)
    n = points.shape[0]
    sym = (symmetry if symmetry is not None else symmetry_map(mean)[0]).cpu().numpy()
    topo = MeshTopology.from_faces(faces, n)
    if not topo.boundary_loops:
        raise ValueError("symmetric_uv needs an open mesh (a face mask with a boundary); this mesh is closed")
    outer = _outer_loop(points, topo)
    ears = _ears(outer, f, n)
    core, tips = outer[~ears], outer[ears]
    holes = [loop.numpy() for loop in topo.boundary_loops if not _same(loop.numpy(), outer)]
    pts, tris = _close_holes(points, f[~np.isin(f, tips).any(1)], holes)
    fixed = np.concatenate([core, tips])  # ear tips take no part in the solve; placed afterwards
    boundary_xy = np.concatenate([_circle(points, core), np.zeros((len(tips), 2))])

    weights = _mean_value_weights(pts, tris)
    best_xy, best_stretch = None, np.inf
    for _ in range(stretch_iterations + 1):
        xy = _solve(weights, fixed, boundary_xy, pts.shape[0])
        sigma_t, stretch = _stretch(pts, tris, xy)
        if stretch >= best_stretch:
            break
        best_xy, best_stretch = xy, stretch
        sigma_v = _vertex_stretch(pts, tris, sigma_t)
        weights = (weights[0], weights[1], weights[2] / sigma_v[weights[1]])
    xy = _place_ears(points, best_xy[:n], outer, ears)
    # x right, y up → u = column, v = row from the top
    uv = np.stack([xy[:, 0], -xy[:, 1]], axis=1)
    uv = _symmetrise(uv, sym, f, [loop.numpy() for loop in topo.boundary_loops])
    lo, hi = uv.min(0), uv.max(0)
    half = np.maximum(np.abs(lo), np.abs(hi))
    half[1] = (hi[1] - lo[1]) / 2.0
    centre = np.array([0.0, (hi[1] + lo[1]) / 2.0])
    uv = 0.5 + (uv - centre) / half * (0.5 - margin)
    return torch.from_numpy(uv).to(mean.dtype)


def uv_quality(uv: torch.Tensor, mean: torch.Tensor, faces: torch.Tensor, symmetry: torch.Tensor | None) -> UVQuality:
    """Measure a parametrisation: flips, area distortion, stretch and symmetry (see :class:`UVQuality`)."""
    p = mean.detach().cpu().double().numpy()
    t = uv.detach().cpu().double().numpy()
    f = faces.detach().cpu().numpy().astype(np.int64)
    signed = _signed_area_2d(t, f)
    positive, negative = int((signed > 0).sum()), int((signed < 0).sum())
    flipped = min(positive, negative) + int((signed == 0).sum())
    area3 = 0.5 * np.linalg.norm(np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]]), axis=1)
    share3 = area3 / area3.sum()
    share2 = np.abs(signed) / np.abs(signed).sum()
    ok = share3 > 0
    ratio = share2[ok] / share3[ok]
    log_ratio = np.abs(np.log2(np.maximum(ratio, 1e-12)))
    _, stretch = _stretch(p, f, t)
    if symmetry is None:
        sym_err = float("nan")
    else:
        s = symmetry.cpu().numpy()
        sym_err = float(np.abs(t[s] - np.stack([1.0 - t[:, 0], t[:, 1]], axis=1)).max())
    loops = MeshTopology.from_faces(faces, p.shape[0]).boundary_loops
    return UVQuality(
        flipped=flipped,
        boundary_crossings=_boundary_crossings(t, [loop.numpy() for loop in loops]),
        area_distortion=float((share3[ok] * log_ratio).sum() / share3[ok].sum()),
        area_ratio_p5=float(np.percentile(ratio, 5)),
        area_ratio_p95=float(np.percentile(ratio, 95)),
        l2_stretch=float(stretch),
        symmetry_error=sym_err,
    )


# -- steps ------------------------------------------------------------------------------


def _boundary_crossings(uv: np.ndarray, loops: list[np.ndarray]) -> int:
    """Number of pairs of boundary edges (of all loops) that properly cross in uv."""
    return len(_crossing_vertices(uv, loops)[1])


def _crossing_vertices(uv: np.ndarray, loops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Boundary edges that properly cross another one in uv: ``(their vertices, crossing
    pair indices)``. Edges sharing a vertex are not compared. All pairs at once (boundaries
    have ~10³ edges)."""
    if not loops:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    start = np.concatenate(loops)
    end = np.concatenate([np.roll(loop, -1) for loop in loops])
    a, b = uv[start], uv[end]

    def side(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.sign((q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0]))

    i, j = np.triu_indices(len(start), k=1)
    share = (start[i] == start[j]) | (start[i] == end[j]) | (end[i] == start[j]) | (end[i] == end[j])
    i, j = i[~share], j[~share]
    cross = (side(a[i], b[i], a[j]) * side(a[i], b[i], b[j]) < 0) & (side(a[j], b[j], a[i]) * side(a[j], b[j], b[i]) < 0)
    edges = np.concatenate([i[cross], j[cross]])
    return np.unique(np.concatenate([start[edges], end[edges]])), np.flatnonzero(cross)


def _symmetrise(uv: np.ndarray, sym: np.ndarray, faces: np.ndarray, loops: list[np.ndarray]) -> np.ndarray:
    """Average each mutual mirror pair (``s(s(i)) = i``) so that ``uv[s(i)] = (-u_i, v_i)``
    exactly (u centred on 0 here). Vertices without a mutual partner keep their solved uv,
    which the symmetric boundary already makes nearly symmetric. Pairs whose averaging would
    flip a triangle or make the boundary cross itself keep their injective solution too
    (few rounds, all vectorised)."""
    keep = sym[sym] != np.arange(len(sym))
    reference = np.sign(np.median(_signed_area_2d(uv, faces)))
    mirrored = np.stack([-uv[sym, 0], uv[sym, 1]], axis=1)
    for _ in range(20):
        candidate = np.where(keep[:, None], uv, 0.5 * (uv + mirrored))
        bad = np.sign(_signed_area_2d(candidate, faces)) != reference
        crossing, _ = _crossing_vertices(candidate, loops)
        if not bad.any() and len(crossing) == 0:
            return candidate
        touched = np.unique(np.concatenate([faces[bad].ravel(), crossing]))
        keep[touched] = True
        keep[sym[touched]] = True
    return uv


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all(np.sort(a) == np.sort(b)))


def _outer_loop(points: np.ndarray, topo: MeshTopology) -> np.ndarray:
    """The boundary loop with the longest 3D length, ordered counter-clockwise in the front
    view (x right, y up) and rotated to start at its top midline vertex."""
    def length(loop: np.ndarray) -> float:
        return float(np.linalg.norm(points[np.roll(loop, -1)] - points[loop], axis=1).sum())

    loop = max((lp.numpy() for lp in topo.boundary_loops), key=length)
    xy = points[loop, :2]
    area = 0.5 * np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1])
    if area < 0:
        loop = loop[::-1]
    upper = points[loop, 1] >= np.median(points[loop, 1])
    score = np.where(upper, np.abs(points[loop, 0]), np.inf)
    return np.roll(loop, -int(np.argmin(score)))


def _ears(loop: np.ndarray, faces: np.ndarray, n: int) -> np.ndarray:
    """Mask over ``loop``: boundary vertices in a single triangle (the outer corners of a
    staircase outline). On a convex boundary such a triangle would collapse to a sliver, so
    its tip is left out of the boundary polygon and placed afterwards (:func:`_place_ears`).
    Adjacent ears are kept on the boundary."""
    count = np.bincount(faces.ravel(), minlength=n)
    ear = count[loop] == 1
    return ear & ~np.roll(ear, 1) & ~np.roll(ear, -1)


def _place_ears(points: np.ndarray, xy: np.ndarray, loop: np.ndarray, ears: np.ndarray) -> np.ndarray:
    """Put each ear tip outside the chord between its loop neighbours (a mesh edge of its
    only triangle), keeping the 3D triangle's shape at the chord's scale: the triangle keeps
    its orientation and lies outside the convex core, so nothing overlaps or flips."""
    k = np.flatnonzero(ears)
    if len(k) == 0:
        return xy
    a, b, c = loop[k - 1], loop[k], loop[(k + 1) % len(loop)]
    chord3 = points[c] - points[a]
    length3 = np.linalg.norm(chord3, axis=1)
    offset3 = points[b] - points[a]
    along = (offset3 * chord3).sum(1) / length3
    height = np.linalg.norm(np.cross(offset3, chord3), axis=1) / length3
    chord = xy[c] - xy[a]
    length = np.linalg.norm(chord, axis=1)
    direction = chord / length[:, None]
    outward = np.stack([direction[:, 1], -direction[:, 0]], axis=1)  # right of a counter-clockwise loop
    scale = (length / length3)[:, None]
    out = xy.copy()
    out[b] = xy[a] + direction * along[:, None] * scale + outward * height[:, None] * scale
    return out


def _close_holes(points: np.ndarray, faces: np.ndarray, holes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Append one virtual vertex per hole (at the loop's centroid) fanned to its loop."""
    pts, tris = [points], [faces]
    index = points.shape[0]
    for loop in holes:
        pts.append(points[loop].mean(0, keepdims=True))
        tris.append(np.stack([loop, np.roll(loop, -1), np.full_like(loop, index)], axis=1))
        index += 1
    return np.concatenate(pts), np.concatenate(tris)


def _circle(points: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Boundary positions on the unit circle by 3D arc length, starting at the top (angle π/2)."""
    seg = np.linalg.norm(points[np.roll(loop, -1)] - points[loop], axis=1)
    t = np.concatenate([[0.0], np.cumsum(seg)[:-1]]) / seg.sum()
    angle = np.pi / 2 + 2 * np.pi * t
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _mean_value_weights(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Floater's mean-value weights as (rows, cols, values) triplets, all positive."""
    rows, cols, vals = [], [], []
    for c in range(3):  # the three corners of every triangle at once
        i, j, k = faces[:, c], faces[:, (c + 1) % 3], faces[:, (c + 2) % 3]
        eij, eik = points[j] - points[i], points[k] - points[i]
        lij, lik = np.linalg.norm(eij, axis=1), np.linalg.norm(eik, axis=1)
        cos = np.clip((eij * eik).sum(1) / np.maximum(lij * lik, 1e-30), -1.0, 1.0)
        tan_half = np.sqrt(np.maximum(1.0 - cos, 0.0) / np.maximum(1.0 + cos, 1e-30))
        rows += [i, i]
        cols += [j, k]
        vals += [tan_half / np.maximum(lij, 1e-30), tan_half / np.maximum(lik, 1e-30)]
    return np.concatenate(rows), np.concatenate(cols), np.maximum(np.concatenate(vals), 1e-12)


def _solve(weights: tuple[np.ndarray, np.ndarray, np.ndarray], boundary: np.ndarray, boundary_xy: np.ndarray, n: int) -> np.ndarray:
    """Solve ``sum_j w_ij (x_i - x_j) = 0`` for interior vertices with the boundary fixed."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    rows, cols, vals = weights
    w = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    lap = (sp.diags(np.asarray(w.sum(1)).ravel()) - w).tocsr()
    is_boundary = np.zeros(n, dtype=bool)
    is_boundary[boundary] = True
    interior = np.flatnonzero(~is_boundary)
    xy = np.zeros((n, 2))
    xy[boundary] = boundary_xy
    rhs = -lap[interior][:, boundary] @ boundary_xy
    xy[interior] = splu(lap[interior][:, interior].tocsc()).solve(rhs)
    return xy


def _signed_area_2d(xy: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = xy[faces[:, 0]], xy[faces[:, 1]], xy[faces[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def _stretch(points: np.ndarray, faces: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-triangle L2 stretch of the uv→surface map and its area-weighted total, with the
    uv areas scaled to the same total as the 3D areas (Sander et al. 2001)."""
    e3 = np.stack([points[faces[:, 1]] - points[faces[:, 0]], points[faces[:, 2]] - points[faces[:, 0]]], axis=2)
    e2 = np.stack([xy[faces[:, 1]] - xy[faces[:, 0]], xy[faces[:, 2]] - xy[faces[:, 0]]], axis=2)
    area3 = 0.5 * np.linalg.norm(np.cross(e3[:, :, 0], e3[:, :, 1]), axis=1)
    det = e2[:, 0, 0] * e2[:, 1, 1] - e2[:, 0, 1] * e2[:, 1, 0]
    scale = np.sqrt(area3.sum() / max(0.5 * np.abs(det).sum(), 1e-30))
    safe = np.where(np.abs(det) > 1e-30, det, 1e-30)
    inv = np.stack([np.stack([e2[:, 1, 1], -e2[:, 0, 1]], 1), np.stack([-e2[:, 1, 0], e2[:, 0, 0]], 1)], 1) / safe[:, None, None]
    jac = np.einsum("fij,fjk->fik", e3, inv) / scale  # [F,3,2]
    sigma = np.sqrt(0.5 * (jac**2).sum(axis=(1, 2)))
    total = float(np.sqrt((area3 * sigma**2).sum() / area3.sum()))
    return sigma, total


def _vertex_stretch(points: np.ndarray, faces: np.ndarray, sigma_t: np.ndarray) -> np.ndarray:
    """Per-vertex stretch: area-weighted RMS of the adjacent triangles' stretch."""
    area3 = 0.5 * np.linalg.norm(np.cross(points[faces[:, 1]] - points[faces[:, 0]], points[faces[:, 2]] - points[faces[:, 0]]), axis=1)
    num = np.zeros(points.shape[0])
    den = np.zeros(points.shape[0])
    for c in range(3):
        np.add.at(num, faces[:, c], area3 * sigma_t**2)
        np.add.at(den, faces[:, c], area3)
    return np.sqrt(num / np.maximum(den, 1e-30)).clip(1e-6)
