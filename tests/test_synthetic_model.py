"""Tests of :mod:`nextface_core.synthetic.model`: the synthetic face model in memory (its Basel files are
tested with the Basel plugin, plugins/model_basel/tests/test_synthetic_files.py)."""

from __future__ import annotations

import pytest
import torch

from nextface_core.model import MorphableModel
from nextface_core.synthetic import FULL_FACES, FULL_VERTICES, synthetic_model

MIDLINE_LANDMARKS = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]
MIRROR_PAIRS = [(17, 26), (21, 22), (36, 45), (39, 42), (37, 44), (40, 47), (31, 35), (48, 54), (50, 52), (58, 56)]


@pytest.fixture(scope="module")
def small() -> MorphableModel:
    return synthetic_model("small", dtype=torch.float64)


def _landmark_vertices(model: MorphableModel) -> dict[int, int]:
    assoc = model.landmarks["ibug68"]
    return dict(zip(assoc.landmark_index.tolist(), assoc.vertex_index.tolist()))


def test_full_size_has_the_real_basel_counts() -> None:
    model = synthetic_model("full")
    assert (model.n_vertices, model.n_faces) == (FULL_VERTICES, FULL_FACES) == (28588, 56572)
    assert (model.n_shape, model.n_expression, model.n_albedo) == (199, 100, 145)
    # orthonormal at float32 precision, even at this size
    basis = model.shape_basis.reshape(model.n_shape, -1)
    assert torch.allclose(basis @ basis.T, torch.eye(model.n_shape), atol=1e-4)
    # about the size of a real face: ~150 mm wide, ~190 mm tall
    extent = model.shape_mean.max(0).values - model.shape_mean.min(0).values
    assert 140 <= extent[0] <= 160 and 170 <= extent[1] <= 210


def test_small_size_is_small_and_every_basis_is_orthonormal(small: MorphableModel) -> None:
    assert 200 <= small.n_vertices <= 1000
    for name in ("shape_basis", "expression_basis", "diffuse_basis", "specular_basis"):
        b = getattr(small, name).reshape(getattr(small, name).shape[0], -1)
        err = (b @ b.T - torch.eye(b.shape[0], dtype=b.dtype)).abs().max().item()
        assert err < 1e-10, f"{name} is not orthonormal (max error {err:.2e})"


def test_mesh_is_a_mirror_symmetric_disk_with_outward_triangles(small: MorphableModel) -> None:
    v, f, sym = small.shape_mean, small.faces, small.symmetry
    # the symmetry map is exact: a mirror image in x, bit for bit, and an involution
    assert torch.equal(v[sym, 0], -v[:, 0]) and torch.equal(v[sym, 1:], v[:, 1:])
    assert torch.equal(sym[sym], torch.arange(small.n_vertices))
    # the mirrored triangle (with its order reversed) is a triangle of the mesh
    def canonical(t: torch.Tensor) -> set[tuple[int, ...]]:
        rows = t.tolist()
        return {min(tuple(r[i:] + r[:i]) for i in range(3)) for r in rows}

    assert canonical(sym[f][:, [0, 2, 1]]) == canonical(f)
    # counter-clockwise seen from +z (outside): every geometric normal points to +z
    n = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert (n[:, 2] > 0).all()
    # a manifold disk: each edge in at most two triangles, Euler characteristic 1
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values
    _, counts = torch.unique(edges, dim=0, return_counts=True)
    assert counts.max() == 2
    assert small.n_vertices - counts.numel() + small.n_faces == 1


def test_uv_layout_is_injective_symmetric_and_in_range(small: MorphableModel) -> None:
    uv, sym = small.uv, small.symmetry
    assert uv.min() >= 0 and uv.max() <= 1
    assert torch.unique(uv, dim=0).shape[0] == small.n_vertices
    assert torch.allclose(uv[sym, 0], 1 - uv[:, 0], atol=1e-12) and torch.equal(uv[sym, 1], uv[:, 1])
    # v counts from the top: the forehead (largest y) has the smallest v
    assert uv[small.shape_mean[:, 1].argmax(), 1] < uv[small.shape_mean[:, 1].argmin(), 1]


def test_landmarks_sit_at_the_right_anatomical_places(small: MorphableModel) -> None:
    lm = _landmark_vertices(small)
    x, y, z = small.shape_mean.T
    assert lm[30] == int(z.argmax()), "the nose tip must be the most forward vertex"
    assert all(x[lm[i]] == 0 for i in MIDLINE_LANDMARKS)
    assert all(lm[b] == small.symmetry[lm[a]] for a, b in MIRROR_PAIRS)
    assert all(x[lm[i]] < 0 for i in range(36, 42)), "the subject's right eye is at negative x"
    # top to bottom: brows, eyes, nose tip, upper lip, lower lip, chin (mm)
    order = [19, 37, 30, 51, 57, 8]
    heights = [y[lm[i]].item() for i in order]
    assert heights == sorted(heights, reverse=True)
    assert 75 <= x[lm[45]] - x[lm[36]] <= 105, "outer eye corners about 90 mm apart"
    assert z[lm[30]] - z[lm[39]] > 15, "the nose sticks out of the face"
    assert set(range(17)).isdisjoint(set(lm) - {8}), "jaw 0–7, 9–16 come from the contour chains"


def test_contour_chains_run_down_each_side_of_the_jaw(small: MorphableModel) -> None:
    contour = small.landmarks["ibug68"].contour
    assert sorted(contour) == [*range(8), *range(9, 17)]
    right, left = contour[0], contour[16]
    assert all(torch.equal(contour[i], right) for i in range(8))
    assert torch.equal(small.symmetry[right], left)
    v = small.shape_mean
    assert (v[right, 0] < 0).all() and (torch.diff(v[right, 1]) <= 0).all(), "right chain: x < 0, temple → chin"
    assert v[right[0], 1] - v[right[-1], 1] > 80, "the chain spans the jaw's height (mm)"
    assert v[right[-1], 1] < v[_landmark_vertices(small)[57], 1], "the chain ends below the mouth"


def test_variances_are_face_sized(small: MorphableModel) -> None:
    n = small.n_vertices
    shape_rms = (small.shape_var.sum() / (3 * n)).sqrt().item()  # mm per coordinate, all components
    assert 2.0 <= shape_rms <= 8.0
    assert (torch.diff(small.shape_var) <= 0).all() and (torch.diff(small.expression_var) <= 0).all()
    # expression moves the mouth far more than the forehead
    lm = _landmark_vertices(small)
    motion = (small.expression_basis.square().sum(-1) * small.expression_var[:, None]).sum(0).sqrt()  # [N]
    forehead = small.shape_mean[:, 1] > 70
    assert motion[lm[57]] > 3 * motion[forehead].mean()


def test_albedo_means_are_skin_like_and_stay_in_range(small: MorphableModel) -> None:
    for mean, basis, var in (
        (small.diffuse_mean, small.diffuse_basis, small.diffuse_var),
        (small.specular_mean, small.specular_basis, small.specular_var),
    ):
        assert 0.05 <= mean.min() and mean.max() <= 0.95
        two_sigma = 2 * var.sqrt()[:, None, None] * basis  # [K,N,3] each component alone
        assert (mean + two_sigma).min() >= 0 and (mean + two_sigma).max() <= 1
        assert (mean - two_sigma).min() >= 0 and (mean - two_sigma).max() <= 1
    skin = small.diffuse_mean.mean(0)
    assert skin[0] > skin[1] > skin[2], "skin is redder than it is blue"


def test_same_seed_same_model_other_seed_other_bases() -> None:
    a, b, c = synthetic_model(seed=3), synthetic_model(seed=3), synthetic_model(seed=4)
    assert torch.equal(a.shape_basis, b.shape_basis) and torch.equal(a.diffuse_mean, b.diffuse_mean)
    assert torch.equal(a.faces, c.faces) and not torch.allclose(a.shape_basis, c.shape_basis)


def test_dtype_and_unknown_size() -> None:
    assert synthetic_model(dtype=torch.float64).shape_basis.dtype == torch.float64
    assert synthetic_model().faces.dtype == torch.int64
    with pytest.raises(ValueError, match="'huge'.*full.*small"):
        synthetic_model("huge")
