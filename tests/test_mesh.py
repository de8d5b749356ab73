"""Vertex normals, topology and the symmetry map on small real meshes (no fakes needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nextface_core.errors import InputError
from nextface_core.mesh import MeshTopology, check_frame, face_normals, symmetry_map, vertex_normals
from nextface_core.synthetic import synthetic_model


def _grid(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """An n×n vertex grid in the z = 0 plane, triangles counter-clockwise seen from +z."""
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    verts = torch.stack([x.reshape(-1), y.reshape(-1), torch.zeros(n * n, dtype=torch.float64)], 1)
    i = torch.arange(n - 1)
    r, c = torch.meshgrid(i, i, indexing="ij")
    a = (r * n + c).reshape(-1)
    faces = torch.cat([torch.stack([a, a + 1, a + n + 1], 1), torch.stack([a, a + n + 1, a + n], 1)])
    return verts, faces


def test_vertex_normals_of_a_sphere_point_outwards() -> None:
    # a UV sphere: every normal must be within 3 degrees of the radial direction
    rings, segs = 24, 48
    theta = torch.linspace(0.1, math.pi - 0.1, rings, dtype=torch.float64)
    phi = torch.arange(segs, dtype=torch.float64) * 2 * math.pi / segs
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    verts = torch.stack([t.sin() * p.cos(), t.sin() * p.sin(), t.cos()], -1).reshape(-1, 3)
    r, s = torch.meshgrid(torch.arange(rings - 1), torch.arange(segs), indexing="ij")
    a = (r * segs + s).reshape(-1)
    b = (r * segs + (s + 1) % segs).reshape(-1)
    faces = torch.cat([torch.stack([a, a + segs, b], 1), torch.stack([b, a + segs, b + segs], 1)])
    normals = vertex_normals(verts, faces)
    cos = ((normals * verts).sum(1) / verts.norm(dim=1)).reshape(rings, segs)[1:-1]  # open rim rings excluded
    assert float(cos.min()) > math.cos(math.radians(1))
    batched = vertex_normals(torch.stack([verts, 2 * verts]), faces)
    assert torch.allclose(batched[0], normals) and torch.allclose(batched[1], normals)


def test_face_normal_length_is_twice_the_area_and_gradients_flow() -> None:
    verts, faces = _grid(3)
    verts.requires_grad_(True)
    fn = face_normals(verts, faces)
    assert torch.allclose(fn, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(fn))
    vertex_normals(verts * torch.tensor([1.0, 1.0, 0.0]) + torch.tensor([0.0, 0.0, 1.0]) * verts[:, :1] ** 2, faces).sum().backward()
    assert verts.grad is not None and torch.isfinite(verts.grad).all()


def test_topology_edges_adjacency_and_boundary() -> None:
    n = 6
    verts, faces = _grid(n)
    topo = MeshTopology.from_faces(faces, n * n)
    # a grid of (n-1)^2 quads split once: horizontal + vertical + diagonal edges
    assert topo.edges.shape == (2 * n * (n - 1) + (n - 1) ** 2, 2)
    assert bool((topo.edges[:, 0] < topo.edges[:, 1]).all())
    deg = topo.degree()
    assert int(deg[0]) == 3 and int(deg[n + 1]) == 6  # corner with a diagonal; interior vertex
    nb = topo.adjacency_indices[topo.adjacency_offsets[n + 1] : topo.adjacency_offsets[n + 2]]
    assert sorted(nb.tolist()) == sorted([0, 1, n, n + 2, 2 * n + 1, 2 * n + 2])
    assert len(topo.boundary_loops) == 1
    loop = topo.boundary_loops[0]
    assert len(loop) == 4 * (n - 1)
    # consecutive loop vertices are grid neighbours, and the loop runs counter-clockwise
    xy = verts[loop, :2].numpy()
    assert np.all(np.abs(np.roll(xy, -1, 0) - xy).sum(1) == 1)
    area = 0.5 * np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1])
    assert area > 0


def test_symmetry_map_pairs_mirror_vertices() -> None:
    model = synthetic_model("small")
    sym, dist = symmetry_map(model.shape_mean)
    assert float(dist.max()) < 1e-3  # the synthetic mesh is exactly symmetric (mm)
    assert torch.equal(sym[sym], torch.arange(model.n_vertices))
    mirrored = model.shape_mean[sym] * torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(mirrored, model.shape_mean, atol=1e-3)


def test_check_frame_finds_units_and_rejects_wrong_axes() -> None:
    model = synthetic_model("small")
    mean, faces = model.shape_mean.double().numpy(), model.faces.numpy()
    assert check_frame(mean, faces, "m").units == "mm"
    metres = check_frame(mean / 1000.0, faces, "m")
    assert (metres.units, metres.scale) == ("m", 1000.0)
    with pytest.raises(InputError, match="y does not point up"):
        check_frame(mean * np.array([1.0, -1.0, 1.0]), faces[:, ::-1].copy(), "upside down")
    with pytest.raises(InputError, match="mirror-symmetric about x"):
        check_frame(mean[:, [1, 0, 2]], faces, "swapped")
    with pytest.raises(InputError, match=r"\+z"):
        check_frame(mean, faces[:, ::-1].copy(), "inside out")
    with pytest.raises(InputError, match=r"\+z"):  # turned round (180° about y): looks towards -z
        check_frame(mean * np.array([-1.0, 1.0, -1.0]), faces, "turned round")
    with pytest.raises(InputError, match="plausible face size"):
        check_frame(mean * 1e-6, faces, "tiny")
