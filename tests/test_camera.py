"""Rotations, the model→camera transform and the pinhole projection."""

from __future__ import annotations

import math

import pytest
import torch

from nextface_core.camera import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    model_to_camera,
    project,
    rotate_normals,
    unproject,
)
from nextface_core.synthetic import synthetic_model


def _rotations(n: int, max_angle: float, seed: int = 0) -> torch.Tensor:
    """``[n,3]`` float64 axis-angle vectors with angles spread over [0, max_angle]."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.linspace(0.0, max_angle, n, dtype=torch.float64)
    return axis * angle[:, None]


def test_rotation_matrices_are_orthonormal_with_determinant_one() -> None:
    zero, tiny = torch.zeros(1, 3, dtype=torch.float64), torch.full((1, 3), 1e-9, dtype=torch.float64)
    r = torch.cat([_rotations(200, 6.0), zero, tiny])
    m = axis_angle_to_matrix(r)
    eye = torch.eye(3, dtype=torch.float64).expand_as(m)
    assert torch.allclose(m @ m.transpose(-1, -2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(m), torch.ones(len(r), dtype=torch.float64), atol=1e-12)
    assert torch.equal(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))


def test_known_rotation_and_batch_shapes() -> None:
    quarter_turn_z = torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64)
    x = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(axis_angle_to_matrix(quarter_turn_z) @ x, y, atol=1e-15)
    assert axis_angle_to_matrix(torch.zeros(4, 5, 3)).shape == (4, 5, 3, 3)
    # the rotation is about the vector itself: it is left unchanged
    r = torch.tensor([0.3, -1.2, 0.5], dtype=torch.float64)
    assert torch.allclose(axis_angle_to_matrix(r) @ r, r, atol=1e-14)


@pytest.mark.parametrize("scale", [0.0, 1e-7, 1e-3, 0.049, 0.051, 1.0, 3.0])
def test_rotation_gradients_match_finite_differences(scale: float) -> None:
    # directions fixed, magnitudes from 0 (the Taylor branch) across its edge (0.05 rad) to 3 rad
    r = (torch.tensor([[0.6, -0.64, 0.48]], dtype=torch.float64) * scale).requires_grad_(True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (r,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("scale", [0.0, 1e-4, 0.02, 0.3])
def test_float32_gradients_agree_with_float64(scale: float) -> None:
    # small angles must not lose float32 gradients to the cancellation in 1 - cos(t)
    r64 = torch.tensor([0.6, -0.64, 0.48], dtype=torch.float64) * scale
    weights = torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = []
    for dtype in (torch.float64, torch.float32):
        r = r64.to(dtype).clone().requires_grad_(True)
        (axis_angle_to_matrix(r) * weights.to(dtype)).sum().backward()
        grads.append(r.grad.double())
    assert (grads[0] - grads[1]).abs().max().item() < 1e-6


def test_matrix_to_axis_angle_round_trip() -> None:
    r = _rotations(200, math.pi - 1e-3, seed=2)  # every angle up to just below π
    assert torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(r)), r, atol=1e-9)
    r32 = r.float()
    assert torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(r32)), r32, atol=2e-6)
    tiny = torch.tensor([1e-8, -2e-8, 3e-8], dtype=torch.float64)
    assert torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(tiny)), tiny, rtol=1e-6, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matrix_to_axis_angle_at_half_turn(dtype: torch.dtype) -> None:
    # at π the antisymmetric part vanishes; ±axis·π are the same rotation
    axes = torch.tensor([[0.0, 0.6, -0.8], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]], dtype=dtype)
    r = torch.nn.functional.normalize(axes, dim=-1) * math.pi
    back = matrix_to_axis_angle(axis_angle_to_matrix(r))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(back.norm(dim=-1), torch.full((3,), math.pi, dtype=dtype), atol=tol)
    assert torch.allclose(axis_angle_to_matrix(back), axis_angle_to_matrix(r), atol=tol * 10)


def test_project_unproject_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    unit = torch.rand(2, 50, 3, generator=g, dtype=torch.float64)
    points = unit * torch.tensor([200.0, 200.0, 400.0]) + torch.tensor([-100.0, -100.0, 300.0])  # in front, z 300..700
    focal = torch.tensor([800.0, 1200.0], dtype=torch.float64)
    pp = torch.tensor([[256.0, 256.0], [320.5, 240.0]], dtype=torch.float64)
    pixels = project(points, focal, pp)
    assert pixels.shape == (2, 50, 2)
    assert torch.allclose(unproject(pixels, points[..., 2], focal, pp), points, atol=1e-9)
    # the optical axis lands on the principal point; +x right and +y down stay so in pixels
    axis = torch.tensor([[[0.0, 0.0, 500.0], [10.0, 20.0, 500.0]]], dtype=torch.float64)
    px = project(axis, focal[:1], pp[:1])[0]
    assert px[0].tolist() == [256.0, 256.0] and px[1].tolist() == [256.0 + 16.0, 256.0 + 32.0]


def test_model_to_camera_puts_the_nose_towards_the_camera() -> None:
    model = synthetic_model("small", dtype=torch.float64)
    nose = int(model.shape_mean[:, 2].argmax())
    translation = torch.tensor([[0.0, 0.0, 600.0]], dtype=torch.float64)
    cam = model_to_camera(model.shape_mean[None], torch.zeros(1, 3, dtype=torch.float64), translation)[0]
    assert int(cam[:, 2].argmin()) == nose, "the nose tip is the nearest point to the camera"
    # Basel y up → camera y down; x is kept (the subject's right eye stays on image left)
    lm = dict(zip(*(t.tolist() for t in (model.landmarks["ibug68"].landmark_index, model.landmarks["ibug68"].vertex_index))))
    assert cam[lm[27], 1] < cam[lm[8], 1], "the nasion is above the chin in the image"
    assert cam[lm[36], 0] < cam[lm[45], 0], "the subject's right eye is on the image's left"
    # a rotation turns the normals as it turns the points
    rotation = torch.tensor([[0.1, 0.7, -0.2]], dtype=torch.float64)
    normals = torch.nn.functional.normalize(torch.randn(1, 4, 3, dtype=torch.float64), dim=-1)
    zero = torch.zeros(1, 3, dtype=torch.float64)
    moved = model_to_camera(normals, rotation, zero) - model_to_camera(torch.zeros_like(normals), rotation, zero)
    assert torch.allclose(rotate_normals(normals, rotation), moved, atol=1e-14)
