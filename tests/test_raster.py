"""The PyTorch rasteriser: coverage, z-buffer, watertight edges, perspective-correct
barycentrics, and gradients (barycentric and silhouette) against finite differences."""

from __future__ import annotations

import math

import pytest
import torch

from nextface_core.raster import antialias, face_neighbors, interpolate, rasterize


def _disc(n: int = 64, radius: float = 20.0, centre: tuple[float, float] = (32.0, 30.0)):
    """A triangle fan approximating a disc (n rim vertices + centre), as pixels and faces."""
    ang = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    rim = torch.stack([centre[0] + radius * torch.cos(ang), centre[1] + radius * torch.sin(ang)], -1)
    pix = torch.cat([torch.tensor([centre], dtype=torch.float64), rim])[None]
    i = torch.arange(n)
    faces = torch.stack([torch.zeros(n, dtype=torch.long), 1 + i, 1 + (i + 1) % n], -1)
    polygon_area = 0.5 * n * radius**2 * math.sin(2 * math.pi / n)
    return pix, faces, polygon_area


def test_coverage_of_disc_and_triangle_matches_analytic_area() -> None:
    pix, faces, area = _disc()
    frags = rasterize(pix, torch.full(pix.shape[:2], 3.0, dtype=torch.float64), faces, (64, 64))
    count = int((frags.face_index >= 0).sum())
    # point sampling error is bounded by the number of boundary pixels (≈ perimeter)
    assert abs(count - area) < 0.1 * 2 * math.pi * 20.0
    tri = torch.tensor([[[3.3, 4.1], [57.2, 9.9], [20.6, 60.4]]])
    frags = rasterize(tri, torch.ones(1, 3), torch.tensor([[0, 1, 2]]), (64, 64))
    (a, b, c) = tri[0]
    tri_area = 0.5 * abs(float((b - a)[0] * (c - a)[1] - (b - a)[1] * (c - a)[0]))
    assert abs(int((frags.face_index >= 0).sum()) - tri_area) < 0.1 * 160


def test_antialiased_mask_sums_to_area_and_its_gradient_matches_the_area_derivative() -> None:
    pix, faces, area = _disc()
    scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    centre = pix[:, :1]
    scaled = centre + (pix - centre) * scale
    frags = rasterize(scaled, torch.full(pix.shape[:2], 3.0, dtype=torch.float64), faces, (64, 64))
    smooth = antialias(frags.mask, frags, scaled, faces)
    total = smooth.sum()
    assert abs(float(total.detach()) - area) < 0.02 * area  # much tighter than point sampling
    (grad,) = torch.autograd.grad(total, scale)
    assert float(grad) == pytest.approx(2 * area, rel=0.1)  # d(s² A)/ds at s = 1


def test_shared_edges_are_watertight_and_covered_once() -> None:
    # a square split along a diagonal that passes exactly through pixel centres
    pix = torch.tensor([[[2.0, 2.0], [10.0, 2.0], [10.0, 10.0], [2.0, 10.0]]])
    depth = torch.ones(1, 4)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    both = rasterize(pix, depth, faces, (12, 12))
    assert int((both.face_index >= 0).sum()) == 64
    one = rasterize(pix, depth, faces[:1], (12, 12))
    two = rasterize(pix, depth, faces[1:], (12, 12))
    assert int((one.face_index >= 0).sum()) + int((two.face_index >= 0).sum()) == 64


def test_jittered_grid_with_edges_through_pixel_centres_covers_each_centre_once() -> None:
    # interior vertices on a half-pixel lattice: many edges pass exactly through centres
    g = torch.Generator().manual_seed(7)
    lin = torch.arange(5, dtype=torch.float32) * 2.0 + 2.0  # 2, 4, ..., 10
    ys, xs = torch.meshgrid(lin, lin, indexing="ij")
    jitter = torch.randint(-2, 3, (5, 5, 2), generator=g).float() * 0.5
    jitter[[0, -1], :, :] = 0.0
    jitter[:, [0, -1], :] = 0.0
    pix = (torch.stack([xs, ys], -1) + jitter).reshape(1, -1, 2)
    idx = torch.arange(25).view(5, 5)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    depth = torch.ones(1, 25)
    union = int((rasterize(pix, depth, faces, (12, 12)).face_index >= 0).sum())
    alone = sum(int((rasterize(pix, depth, faces[i : i + 1], (12, 12)).face_index >= 0).sum()) for i in range(32))
    assert union == alone == 64


def test_nearest_surface_wins_regardless_of_triangle_order() -> None:
    pix = torch.tensor([[[4.0, 4.0], [28.0, 4.0], [4.0, 28.0], [6.0, 6.0], [30.0, 8.0], [8.0, 30.0]]])
    depth = torch.tensor([[5.0, 5.0, 5.0, 3.0, 3.0, 3.0]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    a = rasterize(pix, depth, faces, (32, 32))
    b = rasterize(pix, depth, faces.flip(0), (32, 32))
    assert a.face_index[0, 10, 10] == 1 and a.depth[0, 10, 10] == pytest.approx(3.0)
    assert a.face_index[0, 5, 5] == 0 and a.depth[0, 5, 5] == pytest.approx(5.0)
    assert torch.equal(torch.where(b.face_index >= 0, 1 - b.face_index, -1), a.face_index)
    assert torch.allclose(a.barycentric[0, 10, 10], b.barycentric[0, 10, 10])


def test_barycentrics_are_perspective_correct() -> None:
    # a slanted camera-space triangle: interpolating its 3-D vertices must give the point
    # on the triangle seen through each pixel centre
    verts = torch.tensor([[[-1.0, -0.8, 3.0], [1.2, -0.5, 6.0], [0.1, 1.0, 4.0]]], dtype=torch.float64)
    focal, pp = 40.0, 32.0
    pix = focal * verts[..., :2] / verts[..., 2:] + pp
    frags = rasterize(pix, verts[..., 2], torch.tensor([[0, 1, 2]]), (64, 64))
    points = interpolate(verts, frags)
    covered = frags.face_index[0] >= 0
    assert int(covered.sum()) > 100
    ys, xs = torch.nonzero(covered, as_tuple=True)
    p = points[0, ys, xs]
    assert torch.allclose(focal * p[:, 0] / p[:, 2] + pp, xs.double() + 0.5, atol=1e-9)
    assert torch.allclose(focal * p[:, 1] / p[:, 2] + pp, ys.double() + 0.5, atol=1e-9)
    assert torch.allclose(frags.depth[0, ys, xs], p[:, 2], atol=1e-9)


def test_barycentric_gradients_match_finite_differences() -> None:
    verts = torch.tensor([[[-1.0, -0.8, 3.0], [1.2, -0.5, 6.0], [0.1, 1.0, 4.0]]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    weights = torch.rand(1, 32, 32, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fixed = rasterize(20.0 * verts[..., :2] / verts[..., 2:] + 16.0, verts[..., 2], faces, (32, 32)).face_index

    def loss(v: torch.Tensor) -> torch.Tensor:
        frags = rasterize(20.0 * v[..., :2] / v[..., 2:] + 16.0, v[..., 2], faces, (32, 32))
        assert torch.equal(frags.face_index, fixed)  # steps small enough to keep coverage
        return (frags.barycentric * weights).sum() + frags.depth.sum()

    assert torch.autograd.gradcheck(loss, (verts.clone().requires_grad_(),), eps=1e-7, atol=1e-5)


def test_face_neighbors_and_batch_equals_per_image() -> None:
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    assert face_neighbors(faces).tolist() == [[-1, 1, -1], [-1, -1, 0]]
    pix, faces, _ = _disc(n=16)
    other = pix.flip(-1) * 0.9 + 3.0
    batch = torch.cat([pix, other]).float()
    depth = torch.full(batch.shape[:2], 2.0)
    together = rasterize(batch, depth, faces, (48, 64))
    vals = torch.cat([together.barycentric, together.mask], -1)
    smooth = antialias(vals, together, batch, faces)
    for i in range(2):
        alone = rasterize(batch[i : i + 1], depth[i : i + 1], faces, (48, 64))
        assert torch.equal(alone.face_index, together.face_index[i : i + 1])
        assert torch.allclose(alone.barycentric, together.barycentric[i : i + 1])
        alone_vals = torch.cat([alone.barycentric, alone.mask], -1)
        assert torch.allclose(antialias(alone_vals, alone, batch[i : i + 1], faces), smooth[i : i + 1])


def test_behind_camera_and_degenerate_triangles_are_skipped_and_bad_input_is_named() -> None:
    pix = torch.tensor([[[2.0, 2.0], [20.0, 2.0], [2.0, 20.0], [5.0, 5.0]]])
    frags = rasterize(pix, torch.tensor([[1.0, -1.0, 1.0, 1.0]]), torch.tensor([[0, 1, 2], [0, 3, 3]]), (24, 24))
    assert int((frags.face_index >= 0).sum()) == 0
    with pytest.raises(ValueError, match="faces"):
        rasterize(pix, torch.ones(1, 4), torch.tensor([[0, 1, 9]]), (24, 24))
    with pytest.raises(ValueError, match="depth"):
        rasterize(pix, torch.ones(1, 3), torch.tensor([[0, 1, 2]]), (24, 24))
