"""Rotations, the model→camera transform and the pinhole projection (one place for each).

Camera space is OpenCV's: x right, y down, z forward. Model space is Basel's: y up,
+z out of the face. With rotation 0 the face looks straight at the camera:
``camera = R(rotation) @ (FLIP * model) + translation`` with ``FLIP = (1, -1, -1)``.
A pixel is ``focal * (x / z, y / z) + principal_point`` with (0, 0) the centre of the
top-left pixel's corner, i.e. pixel centres at integer + 0.5.
"""

from __future__ import annotations

import torch

#: model space (Basel: y up, +z out of the face) → the camera's axes (OpenCV: y down, +z into the scene)
AXES_FLIP = (1.0, -1.0, -1.0)


def axis_angle_to_matrix(rotation: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from axis-angle vectors (Rodrigues' formula).

    Below 0.05 rad the coefficients use their Taylor series (exact to float64 there), so
    values and gradients stay finite and exact at ``rotation = 0`` (where a naive
    ``sin(t)/t`` gives NaN gradients) and float32 gradients do not suffer the cancellation
    of ``1 - cos(t)`` at small angles.

    Args:
        rotation: ``[..., 3]`` float, axis × angle in radians.

    Returns:
        ``[..., 3, 3]`` rotation matrices, same dtype and device; differentiable.
    """
    theta2 = (rotation * rotation).sum(-1, keepdim=True)
    small = theta2 < 2.5e-3
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    t2 = theta2
    a_series = 1.0 - t2 / 6.0 * (1.0 - t2 / 20.0 * (1.0 - t2 / 42.0))  # sin(t)/t
    b_series = 0.5 - t2 / 24.0 * (1.0 - t2 / 30.0 * (1.0 - t2 / 56.0))  # (1 - cos t)/t²
    a = torch.where(small, a_series, torch.sin(theta) / theta)
    b = torch.where(small, b_series, (1.0 - torch.cos(theta)) / safe2)
    x, y, z = rotation.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rotation.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device).expand_as(k)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`axis_angle_to_matrix`, angles in [0, π].

    The angle is ``atan2(sin, cos)`` (accurate at every angle). The axis comes from the
    antisymmetric part ``R - Rᵀ = 2 sin θ [a]×`` up to 120°; beyond, where that part vanishes
    (at π it is zero), from the symmetric part ``R + Rᵀ = 2 cos θ I + 2 (1 - cos θ) a aᵀ``.

    Args:
        matrix: ``[..., 3, 3]`` float rotation matrices.

    Returns:
        ``[..., 3]`` axis × angle (radians), same dtype and device.
    """
    m = matrix
    vec = torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    cos = ((m.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    sin = vec.norm(dim=-1) / 2.0
    angle = torch.atan2(sin, cos)
    scale = torch.where(sin < 1e-6, torch.full_like(sin, 0.5), angle / (2.0 * sin.clamp_min(1e-12)))
    small = vec * scale[..., None]
    eye = torch.eye(3, dtype=m.dtype, device=m.device)
    symmetric = (m + m.transpose(-1, -2)) / 2.0 - cos[..., None, None] * eye
    outer = symmetric / (1.0 - cos).clamp_min(1e-6)[..., None, None]  # a aᵀ
    column = outer.diagonal(dim1=-2, dim2=-1).argmax(-1)  # a aᵀ's largest diagonal: the best-conditioned column
    axis = torch.gather(outer, -1, column[..., None, None].expand(*outer.shape[:-1], 1))[..., 0]
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    signed = torch.where((axis * vec).sum(-1) < 0, -angle, angle)  # at π either sign is the same rotation
    large = axis * signed[..., None]
    return torch.where((cos < -0.5)[..., None], large, small)


def model_to_camera(vertices: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Model space (Basel: y up, +z out of the face) → camera space (OpenCV).

    Args:
        vertices: ``[B,N,3]`` float, model space.
        rotation: ``[B,3]`` axis-angle (radians).
        translation: ``[B,3]`` camera-space translation, model units.

    Returns:
        ``[B,N,3]`` camera-space points ``R(rotation) @ (FLIP * v) + translation``; differentiable.
    """
    flip = vertices.new_tensor(AXES_FLIP)
    r = axis_angle_to_matrix(rotation)
    return (vertices * flip) @ r.transpose(1, 2) + translation[:, None, :]


def rotate_normals(normals: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """The rotation part of :func:`model_to_camera`, for directions.

    Args:
        normals: ``[B,N,3]`` float, model space.
        rotation: ``[B,3]`` axis-angle (radians).

    Returns:
        ``[B,N,3]`` camera-space directions (lengths kept).
    """
    r = axis_angle_to_matrix(rotation)
    return (normals * normals.new_tensor(AXES_FLIP)) @ r.transpose(1, 2)


def project(points: torch.Tensor, focal: torch.Tensor, principal_point: torch.Tensor) -> torch.Tensor:
    """Pinhole projection of camera-space points to pixels.

    Args:
        points: ``[B,N,3]`` float, camera space (z > 0 in front of the camera).
        focal: ``[B]`` focal lengths in pixels.
        principal_point: ``[B,2]`` pixels (x, y).

    Returns:
        ``[B,N,2]`` pixels ``focal · (x/z, y/z) + principal_point``; differentiable w.r.t. all inputs.
    """
    z = points[..., 2:3]
    return focal[:, None, None] * points[..., :2] / z + principal_point[:, None, :]


def unproject(pixels: torch.Tensor, depth: torch.Tensor, focal: torch.Tensor, principal_point: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`project`: pixels at a known camera depth back to camera space.

    Args:
        pixels: ``[B,N,2]`` float pixels (x, y).
        depth: ``[B,N]`` camera z.
        focal: ``[B]`` focal lengths in pixels.
        principal_point: ``[B,2]`` pixels.

    Returns:
        ``[B,N,3]`` camera-space points.
    """
    xy = (pixels - principal_point[:, None, :]) / focal[:, None, None] * depth[..., None]
    return torch.cat([xy, depth[..., None]], dim=-1)
