"""RenderInputs arrays → redner's conventions, as plain tensors and dicts (pure torch; Python 3.8
syntax, no NextFace and no pyredner import, so it is tested on every Python).

World space of every redner scene we build IS NextFace camera space (OpenCV: x right, y down,
z forward). redner's conventions (pyredner 0.4.28) that this module maps onto:

- **Camera.** Camera-local space has x right, y up, z forward; ``intrinsic_mat`` (3×3) takes a
  local point to homogeneous screen coordinates that a perspective camera divides by z; the
  image spans ``[-1, 1]`` in x (left → right) and ``[H/W, -H/W]`` in y (top → bottom).
  So ``cam_to_world = diag(1, -1, 1, 1)`` and, for focal ``f`` and principal point ``(c_x, c_y)``,
  ``intrinsic_mat = [[2f/W, 0, 2c_x/W − 1], [0, 2f/W, (H − 2c_y)/W], [0, 0, 1]]``.
- **Environment map.** redner looks a local direction ``l`` up at
  ``u = atan2(l.x, −l.z) / 2π (mod 1)``, ``v = acos(l.y) / π`` (row 0 = local +y), texel centres at
  ``(j + ½)/W``. NextFace's map (``nextface_core.sh``) has row 0 = camera −y and ``u = φ/2π`` with
  φ from camera +x towards +z; flipping its columns makes the two agree under the proper
  rotation :data:`ENVMAP_TO_WORLD`. The map is ``clamp(basis · sh, 0)`` for the SH basis the
  plugin evaluates with the core (``envmap_basis [bands², H, 2H]``, columns already flipped), so
  the SH definition stays in one place.
- **Textures.** redner reads row 0 of a texture tensor at v = 0, as NextFace does: uv and
  texture tensors pass unchanged.
- **Material.** redner's BRDF is Lambert + a normalised Blinn–Phong microfacet lobe (half-vector
  exponent ``e = 2/ρ − 2`` for its roughness ρ) with Schlick Fresnel and Smith masking. The core's
  lobe is a normalised Phong lobe of exponent ``s = 2/r² − 2`` around the mirror direction; a
  half-vector lobe of exponent ``e`` has about the width of a mirror lobe of exponent ``e/4``
  near normal incidence, so we pass ``ρ = 1/(2s + 1) = r² / (4 − 3r²)``
  (:func:`redner_roughness`). Where redner still differs from the core: Fresnel brightens the
  lobe towards grazing angles, masking darkens it, the half-vector lobe stretches at grazing
  angles, the lobe is cut at the horizon, and shadows / self-occlusion are traced.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch

#: redner camera-local (x right, y up, z forward) → NextFace camera space
CAM_TO_WORLD = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
#: redner envmap-local frame → NextFace camera space, for a column-flipped NextFace map
ENVMAP_TO_WORLD = torch.tensor([[0.0, 0.0, -1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
MIN_ROUGHNESS = 0.05  # the core's r = 0 is a mirror; redner needs a finite exponent
MODES = ("full", "albedo", "lighting")


def intrinsic_matrices(focal: torch.Tensor, principal_point: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
    """redner ``intrinsic_mat`` per image → ``[B,3,3]`` (differentiable w.r.t. focal and principal point).

    ``focal [B]``, ``principal_point [B,2]`` in pixels; ``image_size`` (H, W).
    """
    height, width = image_size
    zero, one = torch.zeros_like(focal), torch.ones_like(focal)
    scale = 2.0 * focal / width
    rows = [
        torch.stack([scale, zero, 2.0 * principal_point[:, 0] / width - 1.0], -1),
        torch.stack([zero, scale, (height - 2.0 * principal_point[:, 1]) / width], -1),
        torch.stack([zero, zero, one], -1),
    ]
    return torch.stack(rows, 1)


def screen_to_pixels(screen: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
    """redner screen coordinates ``[...,2]`` (after the perspective divide) → NextFace pixels ``[...,2]``."""
    height, width = image_size
    x = (screen[..., 0] + 1.0) * 0.5 * width
    y = (height / width - screen[..., 1]) * 0.5 * width
    return torch.stack([x, y], dim=-1)


def envmaps(sh: torch.Tensor, envmap_basis: torch.Tensor) -> torch.Tensor:
    """The SH light as redner environment maps → ``[B, H, 2H, 3]`` (clamped ≥ 0).

    ``sh [B,bands²,3]``; ``envmap_basis [bands², H, 2H]`` the SH basis at the texel directions,
    columns flipped (made by the plugin from the core's SH).
    """
    return torch.einsum("khw,bkc->bhwc", envmap_basis.to(sh.dtype), sh).clamp_min(0.0)


def redner_roughness(roughness: torch.Tensor) -> torch.Tensor:
    """Core roughness ``r`` → redner roughness ``r²/(4 − 3r²)`` (see the module docstring), any shape."""
    r2 = roughness.clamp(MIN_ROUGHNESS, 1.0) ** 2
    return r2 / (4.0 - 3.0 * r2)


def materials(arrays: Dict[str, torch.Tensor], mode: str) -> Dict[str, torch.Tensor]:
    """Texture tensors for redner's ``Material`` → ``{"diffuse" [S,T,T,3], "specular" [S,T,T,3], "roughness" [S,T,T,1]}``.

    ``lighting`` mode: white Lambertian, no specular lobe; ``albedo`` mode reads the diffuse
    texture through redner's ``diffuse_reflectance`` channel, so it keeps the diffuse map.
    S is 1 (shared) or B, as given.
    """
    if mode not in MODES:
        raise ValueError("render mode {!r} is not one of {}".format(mode, MODES))
    diffuse, specular = arrays["diffuse"], arrays["specular"]
    if mode == "lighting":
        diffuse = torch.ones_like(diffuse[:1])
    if mode != "full":
        specular = torch.zeros_like(specular[:1])
    return {"diffuse": diffuse, "specular": specular, "roughness": redner_roughness(arrays["roughness"])}


def scene_dicts(arrays: Dict[str, torch.Tensor], image_size: Tuple[int, int], mode: str) -> List[dict]:
    """Everything pyredner needs, one dict per image: ``camera`` (``cam_to_world``, ``intrinsic_mat``,
    ``resolution``), ``mesh`` (``vertices``, ``indices`` int32, ``uvs``, ``normals``), ``material``
    (three textures) and ``envmap`` (``values [H,2H,3]``, ``env_to_world``). Plain tensors only.

    ``arrays``: the RenderInputs tensors by field name plus ``envmap_basis``.
    """
    maps = materials(arrays, mode)
    intrinsics = intrinsic_matrices(arrays["focal"], arrays["principal_point"], image_size)
    env = envmaps(arrays["sh"], arrays["envmap_basis"])
    scenes = []
    for i in range(arrays["vertices"].shape[0]):
        scenes.append(
            {
                "camera": {"cam_to_world": CAM_TO_WORLD, "intrinsic_mat": intrinsics[i], "resolution": tuple(image_size)},
                "mesh": {
                    "vertices": arrays["vertices"][i],
                    "indices": arrays["faces"].to(torch.int32),
                    "uvs": arrays["uv"],
                    "normals": arrays["normals"][i],
                },
                "material": {name: t[min(i, t.shape[0] - 1)] for name, t in maps.items()},
                "envmap": {"values": env[i], "env_to_world": ENVMAP_TO_WORLD},
            }
        )
    return scenes
