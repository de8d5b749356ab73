"""A synthetic, face-like morphable model with the Basel conventions, built in memory.

The Basel plugin's testing module (``nextface_model_basel.testing``) writes the same
arrays in the Basel 2017 + AlbedoMM file layouts.

Geometry: a height field ``z(x, y)`` over a left–right mirror-symmetric grid that fills a
face-shaped outline in the (x, y) plane. Each grid quad becomes two triangles (the diagonal
mirrored between the two halves) or, in the central "detail" area, four triangles around a
centre vertex — that choice lets the ``"full"`` size hit the real BFM counts exactly. Units
are millimetres with Basel axes (y up, +z out of the face, nose tip = largest z, the
subject's right eye at negative x); triangles are counter-clockwise seen from +z (outside).

Bases: the columns of each ``pcaBasis`` are orthonormal (QR of spatially smooth random
fields built from low-frequency cosines of (x, y); component k mixes frequencies up to a
cut-off growing with k, so later components are finer, as in a PCA). Variances decay with
k and are scaled so component k moves each coordinate by ``rms_k`` (root mean square):
shape 3 mm·(k+1)^-0.75, expression 1.5 mm·(k+1)^-0.7 concentrated on mouth, jaw, eyes and
brows. Colour: Basel's ``color`` mean is an sRGB-like skin tone (redder lips, darker brows);
the AlbedoMM diffuse mean is its linear version (:func:`nextface_core.color.srgb_to_linear`),
the specular mean a grey 0.18–0.25 (brighter on the T-zone).

Landmarks (ibug-68): the nearest vertex to anatomical targets; midline points lie on x = 0,
left-side points are the mirror images of the right-side ones, the nose tip (30) is the
most forward vertex. The jaw contour (0–7, 9–16) is not in the fixed table: as in the
sfm-as-bfm folder, each side has a chain of candidate vertices from the temple to the chin
(in memory ``LandmarkAssociation.contour``; in the Basel files ``contour_vertices.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import solve_triangular

from ..color import srgb_to_linear
from ..model import LandmarkAssociation, MorphableModel

FULL_VERTICES = 28588
FULL_FACES = 56572

_WIDTH = 150.0  # mm, x extent of the face outline
_HEIGHT = 190.0  # mm, y extent
_Y_CENTRE = -5.0  # mm, y of the outline's centre (nose level)


@dataclass(frozen=True)
class _Size:
    columns: int  # grid quads across (even, so x = 0 is a grid line)
    rows: int  # grid quads down
    split: int | None  # quads split around a centre vertex; None = as many as hit FULL_VERTICES
    components: tuple[int, int, int, int]  # shape, expression, colour, albedo


_SIZES = {
    # 2 * (columns + rows) boundary edges = 602 = 2 * 28588 - 56572 - 2, Euler's count for a disk
    "full": _Size(140, 161, None, (199, 100, 199, 145)),
    "small": _Size(22, 25, 24, (30, 15, 30, 20)),
}


@dataclass(frozen=True)
class SyntheticArrays:
    """The model as numpy arrays (N vertices, F faces, Basel interleaving; int64 indices);
    ``groups`` are named as Basel's HDF5 groups."""

    points: np.ndarray  # [N,3] shape mean
    faces: np.ndarray  # [F,3]
    uv: np.ndarray  # [N,2]
    symmetry: np.ndarray  # [N]
    groups: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # name: mean [3N], basis [3N,K], var [K]
    landmarks: dict[int, int]  # ibug-68 index: vertex
    right_contour: np.ndarray  # [M] vertices, temple → chin, subject's right (x < 0)
    left_contour: np.ndarray  # [M] their mirror images


def _gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _smoothstep(edge0: float, edge1: float, t: np.ndarray) -> np.ndarray:
    s = np.clip((t - edge0) / (edge1 - edge0), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Face depth z (mm) at (x, y): a head-like ellipsoid cap plus facial features, even in x."""
    ax = np.abs(x)
    z = 100.0 * np.sqrt(1.0 - (x / 88.0) ** 2 - ((y - _Y_CENTRE) / 125.0) ** 2)
    z += 4.0 * _gauss(x, y, 0, 38, 14, 7)  # glabella
    z += 5.0 * _gauss(ax, y, 30, 41, 16, 5)  # brow ridges
    z -= 9.0 * _gauss(ax, y, 32, 24, 13, 8)  # eye sockets
    z += 5.0 * _gauss(ax, y, 32, 24, 8, 4.5)  # eyeballs / lids
    z += 5.0 * _gauss(ax, y, 45, 2, 14, 12)  # cheekbones
    # nose: a ridge rising from the nasion (y = 30) to the tip (y = -5), cut off below the tip
    width = 5.0 + 4.0 * _smoothstep(30.0, -5.0, y)
    ridge = 20.0 * _smoothstep(30.0, -4.0, y) / (1.0 + np.exp(-(y + 8.0) / 2.0))
    z += ridge * np.exp(-0.5 * (x / width) ** 2)
    z += 8.0 * _gauss(x, y, 0, -3.5, 3.5, 5)  # tip (narrow across: the tip is on the midline)
    z += 5.0 * _gauss(ax, y, 13, -10, 5, 4)  # alae
    z += 6.0 * _gauss(x, y, 0, -40, 20, 7)  # lips
    z -= 2.5 * _gauss(x, y, 0, -40, 18, 1.3)  # lip line
    z -= 3.0 * _gauss(x, y, 0, -58, 18, 4)  # groove under the lower lip
    z += 8.0 * _gauss(x, y, 0, -80, 20, 10)  # chin
    z -= 15.0 * _smoothstep(-88.0, -100.0, y)  # under the chin
    return z


def _outline(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test of the face outline in normalised coordinates (u, v in [-1, 1], v up).

    A superellipse whose half-width narrows towards the chin; every row and column meets it
    in one interval, so the grid quads inside form a disk with 2 (columns + rows) boundary edges.
    """
    half_width = 1.0 - 0.18 * np.clip(-v, 0.0, 1.0) ** 2
    return (np.abs(u) / half_width) ** 2.5 + np.abs(v) ** 2.5 <= 1.0


def _mesh(size: _Size) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid mesh → ``points [N,3]``, ``faces [F,3]``, ``symmetry [N]``."""
    cols, rows = size.columns, size.rows
    half = cols // 2
    dx, dy = _WIDTH / cols, _HEIGHT / rows
    qc, qr = np.meshgrid(np.arange(cols), np.arange(rows), indexing="xy")  # quad column, row (row 0 at the bottom)
    inside = _outline((qc + 0.5 - half) / half, (qr + 0.5 - rows / 2) / (rows / 2))
    qc, qr = qc[inside], qr[inside]
    n_quads = qc.size
    boundary_vertices = cols + rows  # a disk with 2 (cols + rows) boundary edges
    if size.split is None:
        n_split = FULL_VERTICES - (n_quads + boundary_vertices + 1)
    else:
        n_split = size.split
    if n_split < 0 or n_split % 2 or n_split > n_quads:
        raise ValueError(f"synthetic mesh: cannot split {n_split} of {n_quads} quads symmetrically")

    # split the quads nearest the face centre (right half by a stable order, then mirrored)
    right = np.flatnonzero(qc >= half)
    dist = ((qc[right] + 0.5 - half) * dx / 40.0) ** 2 + ((qr[right] + 0.5 - rows / 2) * dy / 55.0) ** 2
    chosen = right[np.lexsort((qr[right], qc[right], dist))[: n_split // 2]]
    is_split = np.zeros(n_quads, dtype=bool)
    is_split[chosen] = True
    quad_keys = qr * cols + qc  # ascending: the quads are listed row by row
    is_split[np.searchsorted(quad_keys, qr[chosen] * cols + (cols - 1 - qc[chosen]))] = True

    # vertices by doubled integer grid coordinates: corners (2c, 2r), centres (2c+1, 2r+1)
    corners = np.stack([qc, qr], -1)[:, None, :] + np.array([[0, 0], [1, 0], [1, 1], [0, 1]])  # [Q,4,2] a b c d
    keys_x = np.concatenate([2 * corners[..., 0].ravel(), 2 * qc[is_split] + 1])
    keys_y = np.concatenate([2 * corners[..., 1].ravel(), 2 * qr[is_split] + 1])
    stride = 2 * cols + 2
    keys = (2 * rows - keys_y) * stride + keys_x  # row-major from the top (forehead first)
    unique, inverse = np.unique(keys, return_inverse=True)
    gx, gy = unique % stride, 2 * rows - unique // stride
    quad_corner = inverse[: 4 * n_quads].reshape(n_quads, 4)
    centre = inverse[4 * n_quads :]

    a, b, c, d = quad_corner.T
    plain = ~is_split
    left, rgt = plain & (qc < half), plain & (qc >= half)
    faces = np.concatenate(
        [
            np.stack([a[rgt], b[rgt], c[rgt]], -1),
            np.stack([a[rgt], c[rgt], d[rgt]], -1),
            np.stack([a[left], b[left], d[left]], -1),
            np.stack([b[left], c[left], d[left]], -1),
        ]
        + [np.stack([p[is_split], q[is_split], centre], -1) for p, q in ((a, b), (b, c), (c, d), (d, a))]
    )
    x = (gx / 2.0 - half) * dx
    y = (gy / 2.0 - rows / 2) * dy + _Y_CENTRE
    points = np.stack([x, y, _height(x, y)], -1)
    mirror_keys = (2 * rows - gy) * stride + (2 * cols - gx)
    symmetry = np.searchsorted(unique, mirror_keys)
    if not np.array_equal(unique[symmetry], mirror_keys):
        raise AssertionError("synthetic mesh: a vertex has no mirror image")
    return points, faces.astype(np.int64), symmetry.astype(np.int64)


def _cosines(x: np.ndarray, y: np.ndarray, m: int) -> np.ndarray:
    """The first ``m`` separable cosines ``cos(π a u) cos(π b v)`` of the face's bounding box,
    by increasing frequency ``a² + b²`` → ``[N, m]`` (a prefix of this list for any smaller m)."""
    radius = math.ceil(math.sqrt(4.0 * m / math.pi)) + 2
    fa, fb = np.meshgrid(np.arange(radius), np.arange(radius), indexing="ij")
    order = np.lexsort((fb.ravel(), fa.ravel(), (fa**2 + fb**2).ravel()))[:m]
    fa, fb = fa.ravel()[order], fb.ravel()[order]
    u = (x - x.min()) / (x.max() - x.min())
    v = (y - y.min()) / (y.max() - y.min())
    return np.cos(np.pi * u[:, None] * fa) * np.cos(np.pi * v[:, None] * fb)


def _smooth_fields(
    cosines: np.ndarray, n: int, weight: np.ndarray, rng: np.random.Generator, dtype: type
) -> np.ndarray:
    """``n`` orthonormal, spatially smooth 3-vector fields → ``[3N, n]`` of ``dtype`` (Basel interleaving).

    Fields are random mixtures of the first ``n + 16`` of ``cosines [N, M]``; field k mixes
    frequencies up to a cut-off growing with k, so later fields are finer. ``weight [N]``
    concentrates them spatially (before the QR, which only mixes the fields).
    """
    n_freq = n + 16
    phi = weight[:, None] * cosines[:, :n_freq]  # [N, n_freq]
    cutoff = 3.0 + np.arange(n) / 3.0  # frequencies per channel that field k mixes
    envelope = np.exp(-0.5 * (np.arange(n_freq)[:, None] / cutoff) ** 2)  # [n_freq, n]
    coeffs = rng.standard_normal((3, n_freq, n)) * envelope  # field k, channel c = phi @ coeffs[c, :, k]
    # QR without forming the tall [3N, n] matrix: phi = psi L^T with orthonormal psi, so the
    # fields are psi @ (L^T coeffs[c]) per channel and only that small matrix needs a QR
    chol = np.linalg.cholesky(phi.T @ phi)
    psi = solve_triangular(chol, phi.T, lower=True).T  # [N, n_freq], orthonormal columns
    q, r = np.linalg.qr((chol.T @ coeffs).reshape(3 * n_freq, n))
    q = (q * np.sign(np.diag(r))).reshape(3, n_freq, n).transpose(1, 0, 2).reshape(n_freq, 3 * n)
    return (psi.astype(dtype) @ q.astype(dtype)).reshape(-1, n)  # [N, 3n] → [3N, n]: x, y, z per vertex


def _variances(rms0: float, decay: float, n: int, n_vertices: int) -> np.ndarray:
    """Variance of each unit-norm component so that it moves a coordinate by ``rms0 (k+1)^-decay``."""
    rms = rms0 * (np.arange(n) + 1.0) ** (-decay)
    return rms**2 * 3 * n_vertices


def _nearest(points: np.ndarray, candidates: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index (into ``points``) of the candidate vertex nearest in (x, y) to each target [T,2]."""
    d = ((points[candidates, None, :2] - targets[None]) ** 2).sum(-1)
    return candidates[d.argmin(0)]


# ibug-68 targets (x, y) in mm on the subject's right side (x <= 0), and their mirror partners
_RIGHT_TARGETS = {
    17: (-52, 36), 18: (-44, 41), 19: (-35, 43), 20: (-25, 42), 21: (-14, 39),
    36: (-45, 24), 37: (-37, 28), 38: (-27, 28), 39: (-19, 24), 40: (-27, 20), 41: (-37, 20),
    31: (-12, -11), 32: (-6, -13),
    48: (-24, -40), 49: (-15, -35), 50: (-6, -33), 59: (-15, -46), 58: (-6, -49),
    60: (-20, -40), 61: (-7, -38.5), 67: (-7, -41.5),
}  # fmt: skip
_MIRROR = {
    17: 26, 18: 25, 19: 24, 20: 23, 21: 22, 36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46,
    31: 35, 32: 34, 48: 54, 49: 53, 50: 52, 59: 55, 58: 56, 60: 64, 61: 63, 67: 65,
}  # fmt: skip
_MIDLINE_TARGETS = {27: 25, 28: 15, 29: 5, 33: -14, 51: -34, 62: -38.5, 66: -41.5, 57: -50, 8: -86}


def _landmarks(points: np.ndarray, symmetry: np.ndarray) -> tuple[dict[int, int], np.ndarray, np.ndarray]:
    """ibug-68 vertex table (jaw 0–7, 9–16 left to the contour chains) and the two jaw chains."""
    x = points[:, 0]
    midline = np.flatnonzero(x == 0.0)
    right = np.flatnonzero(x < 0.0)
    table: dict[int, int] = {}
    ids = list(_RIGHT_TARGETS)
    for lm, vertex in zip(ids, _nearest(points, right, np.array([_RIGHT_TARGETS[i] for i in ids], float))):
        table[lm] = int(vertex)
        table[_MIRROR[lm]] = int(symmetry[vertex])
    ids = list(_MIDLINE_TARGETS)
    targets = np.array([(0.0, _MIDLINE_TARGETS[i]) for i in ids])
    table.update({lm: int(v) for lm, v in zip(ids, _nearest(points, midline, targets))})
    table[30] = int(midline[points[midline, 2].argmax()])  # nose tip: the most forward point
    if points[table[30], 2] < points[:, 2].max():
        raise AssertionError("synthetic mesh: the nose tip is not the most forward vertex")

    # jaw chain: 17 samples on an elliptical arc from the temple (t = 0) to beside the chin
    t = np.radians(np.linspace(0.0, 85.0, 17))
    arc = np.stack([-66.0 * np.cos(t), 25.0 - 113.0 * np.sin(t)], -1)
    chain = _nearest(points, right, arc)
    chain = chain[np.sort(np.unique(chain, return_index=True)[1])]
    return table, chain, symmetry[chain]


def _generate(size: _Size, seed: int, dtype: type = np.float64) -> SyntheticArrays:
    """The model's arrays; the bases (the bulk) are computed in ``dtype``, the rest in float64."""
    points, faces, symmetry = _mesh(size)
    n = points.shape[0]
    x, y = points[:, 0], points[:, 1]
    rng = np.random.default_rng(seed)
    n_shape, n_expr, n_colour, n_albedo = size.components

    expression_weight = (
        0.05
        + _gauss(x, y, 0, -45, 30, 16)
        + 0.6 * _gauss(np.abs(x), y, 32, 25, 14, 8)
        + 0.6 * _gauss(np.abs(x), y, 28, 41, 18, 7)
        + 0.5 * _gauss(x, y, 0, -78, 25, 14)
    )
    ones = np.ones(n)
    cosines = _cosines(x, y, max(size.components) + 16)

    # colour (sRGB-like, as Basel's) and the linear diffuse/specular albedos derived from it
    skin = np.array([0.80, 0.62, 0.52])
    lips = _gauss(x, y, 0, -40, 18, 6)[:, None]
    brows = _gauss(np.abs(x), y, 31, 41, 14, 3.5)[:, None]
    colour = skin + lips * (np.array([0.70, 0.42, 0.42]) - skin) + brows * (np.array([0.42, 0.31, 0.25]) - skin)
    diffuse = srgb_to_linear(torch.from_numpy(colour)).numpy()
    t_zone = np.maximum(_gauss(x, y, 0, 0, 10, 25), _gauss(x, y, 0, 55, 40, 18))[:, None]
    specular = np.repeat(0.18 + 0.07 * t_zone, 3, axis=1)

    groups = {
        "shape": (points.ravel(), _smooth_fields(cosines, n_shape, ones, rng, dtype), _variances(3.0, 0.75, n_shape, n)),
        "expression": (
            np.zeros(3 * n),
            _smooth_fields(cosines, n_expr, expression_weight, rng, dtype),
            _variances(1.5, 0.7, n_expr, n),
        ),
        "color": (colour.ravel(), _smooth_fields(cosines, n_colour, ones, rng, dtype), _variances(0.03, 0.8, n_colour, n)),
        "diffuseAlbedo": (
            diffuse.ravel(),
            _smooth_fields(cosines, n_albedo, ones, rng, dtype),
            _variances(0.015, 0.8, n_albedo, n),
        ),
        "specularAlbedo": (
            specular.ravel(),
            _smooth_fields(cosines, n_albedo, ones, rng, dtype),
            _variances(0.01, 0.8, n_albedo, n),
        ),
    }
    scale = 0.96 / max(_WIDTH, _HEIGHT)  # one scale for u and v: texels stay square
    uv = np.stack([0.5 + x * scale, 0.5 - (y - _Y_CENTRE) * scale], -1)
    table, right_chain, left_chain = _landmarks(points, symmetry)
    return SyntheticArrays(points, faces, uv, symmetry, groups, table, right_chain, left_chain)


def synthetic_arrays(size: str = "small", seed: int = 0, dtype: type = np.float64) -> SyntheticArrays:
    """The arrays of the synthetic model of ``size`` (``"small"``: a few hundred vertices;
    ``"full"``: the real BFM sizes), deterministic for a ``seed``; bases in ``dtype``."""
    try:
        spec = _SIZES[size]
    except KeyError:
        raise ValueError(f"unknown synthetic model size {size!r}; use one of {sorted(_SIZES)}") from None
    return _generate(spec, seed, dtype)


def synthetic_model(
    size: str = "small", seed: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> MorphableModel:
    """The synthetic model of :func:`synthetic_arrays` as a :class:`MorphableModel`.

    Diffuse/specular come from the AlbedoMM-like groups; ``uv`` is the grid layout (mirror
    symmetric: ``u[symmetry] = 1 - u``); ``landmarks["ibug68"]`` holds the fixed table and, in
    ``contour``, the right jaw chain for ibug 0–7 and the left one for 9–16.
    """
    arrays = synthetic_arrays(size, seed, np.float64 if dtype == torch.float64 else np.float32)
    n = arrays.points.shape[0]

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

    def group(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, basis, var = arrays.groups[name]
        return tensor(mean.reshape(n, 3)), tensor(basis.T.reshape(-1, n, 3)), tensor(var)

    def index(a: np.ndarray | list[int]) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)

    shape_mean, shape_basis, shape_var = group("shape")
    _, expression_basis, expression_var = group("expression")
    diffuse_mean, diffuse_basis, diffuse_var = group("diffuseAlbedo")
    specular_mean, specular_basis, specular_var = group("specularAlbedo")
    ids = sorted(arrays.landmarks)
    contour = {i: index(arrays.right_contour) for i in range(8)}
    contour.update({i: index(arrays.left_contour) for i in range(9, 17)})
    association = LandmarkAssociation(index(ids), index([arrays.landmarks[i] for i in ids]), contour)
    return MorphableModel(
        shape_mean=shape_mean,
        shape_basis=shape_basis,
        shape_var=shape_var,
        expression_basis=expression_basis,
        expression_var=expression_var,
        diffuse_mean=diffuse_mean,
        diffuse_basis=diffuse_basis,
        diffuse_var=diffuse_var,
        specular_mean=specular_mean,
        specular_basis=specular_basis,
        specular_var=specular_var,
        faces=index(arrays.faces),
        uv=tensor(arrays.uv),
        landmarks={"ibug68": association},
        symmetry=index(arrays.symmetry),
        name=f"synthetic-{size}",
    )
