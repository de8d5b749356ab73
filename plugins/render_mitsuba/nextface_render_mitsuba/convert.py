"""NextFace conventions → Mitsuba 3 conventions (pure PyTorch, no Mitsuba import).

World space of every Mitsuba scene we build IS NextFace camera space (OpenCV: x right,
y down, z forward), so vertices, normals and light need no transform; only the sensor and
the environment emitter get a ``to_world``:

- Mitsuba's perspective sensor looks down its local +z with +y up and +x to the LEFT of the
  image; OpenCV's camera has +x right and +y down. The sensor's local→world is therefore the
  180° rotation about z, ``diag(-1, -1, 1)``.
- Mitsuba's ``envmap`` looks a world direction up as ``u = atan2(l.x, -l.z) / 2π (mod 1)``,
  ``v = acos(l.y) / π`` in its local frame ``l``; NextFace's equirect map (:mod:`nextface_core.sh`)
  has ``v`` from camera −y (up) and ``u = φ / 2π`` with φ from camera +x towards +z. Matching
  the two gives local ``(x, y, z) = (cam z, −cam y, −cam x)`` up to a mirror of u, which we
  undo by flipping the map's columns so that ``to_world`` is a proper rotation
  (:data:`ENVMAP_TO_WORLD`).
"""

from __future__ import annotations

import torch

from nextface_core.sh import sh_to_envmap

#: Mitsuba sensor local frame → NextFace camera space (row-major 4×4)
SENSOR_TO_WORLD: list[list[float]] = [[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
#: Mitsuba envmap local frame → NextFace camera space, for a column-flipped NextFace map
ENVMAP_TO_WORLD: list[list[float]] = [[0.0, 0.0, -1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def sensor_settings(focal: torch.Tensor, principal_point: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Mitsuba ``perspective`` settings per image → ``[B,3]``: x field of view in degrees, and
    ``principal_point_offset_x/y`` (fractions of the film size; Mitsuba moves the principal
    point by −offset × size from the image centre).

    ``focal [B]``, ``principal_point [B,2]`` in pixels; ``image_size`` (H, W).
    """
    height, width = image_size
    fov = torch.rad2deg(2.0 * torch.atan(width / (2.0 * focal)))
    offset_x = (0.5 * width - principal_point[:, 0]) / width
    offset_y = (0.5 * height - principal_point[:, 1]) / height
    return torch.stack([fov, offset_x, offset_y], dim=-1)


def envmap_data(sh: torch.Tensor, height: int) -> torch.Tensor:
    """The SH light as the data tensor of a Mitsuba ``envmap`` → ``[B, H, 2H+2, 3]``.

    The core's :func:`~nextface_core.sh.sh_to_envmap` map, clamped at 0 (an emitter cannot
    emit negative radiance, and Mitsuba importance-samples the map by its luminance), its
    columns flipped (see the module docstring) and padded with one wrap-around column on
    each side, the layout Mitsuba keeps internally (its ``data`` parameter).
    ``sh [B,bands²,3]``; ``height`` ≥ 3.
    """
    env = sh_to_envmap(sh, height).clamp_min(0.0).flip(2)
    return torch.cat([env[:, :, -1:], env, env[:, :, :1]], dim=2)


def camera_warp(
    image: torch.Tensor, focal: torch.Tensor, principal_point: torch.Tensor
) -> torch.Tensor:
    """Attach exact-in-the-limit focal and principal-point gradients to a rendered ``image [B,H,W,C]``.

    For a pinhole camera, changing focal ``f`` or principal point ``c`` only re-maps pixels:
    ``I(p) = R((p − c) / f)``, so ``∂I/∂f = −∇I·(p − c)/f`` and ``∂I/∂c = −∇I``. We estimate
    ``∇I`` by central differences of the rendered image and add the first-order term
    ``J·(θ − stopgrad θ)``: the returned value equals ``image``, its gradient w.r.t. ``focal [B]``
    and ``principal_point [B,2]`` is ``Jᵀ g``. Silhouettes count, because a moving edge is a
    (filtered) step in ``I``. Mitsuba itself gives no silhouette gradients for camera intrinsics.
    """
    if not (focal.requires_grad or principal_point.requires_grad):
        return image
    with torch.no_grad():
        grad_y, grad_x = torch.gradient(image, dim=(1, 2))
        height, width = image.shape[1:3]
        px = torch.arange(width, dtype=image.dtype, device=image.device) + 0.5
        py = torch.arange(height, dtype=image.dtype, device=image.device) + 0.5
        rel_x = px[None, None, :, None] - principal_point[:, 0, None, None, None]
        rel_y = py[None, :, None, None] - principal_point[:, 1, None, None, None]
        d_focal = -(grad_x * rel_x + grad_y * rel_y) / focal[:, None, None, None]
    delta_f = (focal - focal.detach())[:, None, None, None]
    delta_c = principal_point - principal_point.detach()
    return image + d_focal * delta_f - grad_x * delta_c[:, 0, None, None, None] - grad_y * delta_c[:, 1, None, None, None]
