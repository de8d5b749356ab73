"""THE shading model of NextFace: every renderer (vertex, mitsuba, redner) matches it.

A surface point with unit normal ``n``, seen from the camera at the origin along the
unit view vector ``v = −p/|p|`` (``p`` its camera-space position), with diffuse albedo
``ρ_d``, specular albedo ``ρ_s`` and roughness ``r ∈ [0, 1]``, under the distant light
``L(ω) = Σ_{l,m} L_lm Y_lm(ω)`` (:mod:`nextface_core.sh`, camera space), has outgoing
linear radiance::

    full      = ρ_d · E(n) / π  +  ρ_s · S(R, r)
    albedo    = ρ_d
    lighting  = E(n) / π                       (a white Lambertian surface)

    E(n)    = Σ_l Â_l Σ_m L_lm Y_lm(n)         (irradiance, Â_l the clamped-cosine kernel)
    R       = 2 (n·v) n − v                    (mirror direction of the view)
    S(R, r) = Σ_l g_l(r) Σ_m L_lm Y_lm(R)      (the light seen through a glossy lobe)
    g_l(r)  = exp(−l² / (2 s)),  s = 2 / r² − 2  (so g_l = exp(−l² r² / (4 (1 − r²))))

``S`` is the environment convolved with a normalised Phong lobe of exponent ``s`` around
``R``: a normalised Phong lobe's SH attenuation is ≈ ``exp(−l²/2s)`` (Ramamoorthi &
Hanrahan 2002, "Frequency space environment map rendering"), and ``s = 2/r² − 2`` is the
Phong exponent that matches a Beckmann/GGX lobe of roughness ``r`` (Walter et al. 2007).
``r = 0`` is a mirror (``g_l = 1``); ``r → 1`` leaves only the mean radiance (``g_0 = 1``).
Fresnel, masking and the cosine foreshortening are left out on purpose: the lobe's total
reflectance is ``ρ_s`` whatever the angle, which keeps the model cheap, smooth and easy to
reproduce exactly in a ray tracer (one SH evaluation in ``n`` and one in ``R`` per point).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .render import RenderMode
from .sh import lambert_kernel, sh_basis

_INV_PI = 0.31830988618379067


def _bands_of(sh: Tensor) -> int:
    if sh.ndim != 3 or sh.shape[2] != 3:
        raise ValueError(f"sh must be [B,bands²,3], got {tuple(sh.shape)}")
    bands = int(round(sh.shape[1] ** 0.5))
    if bands * bands != sh.shape[1]:
        raise ValueError(f"sh has {sh.shape[1]} coefficients per colour, which is not a square (bands²)")
    return bands


def _band_of_coefficient(bands: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``l`` of each of the ``bands²`` coefficients → ``[bands²]``."""
    return torch.arange(bands, device=device, dtype=dtype).repeat_interleave(
        torch.arange(bands, device=device) * 2 + 1
    )


def specular_band_weights(roughness: Tensor, bands: int) -> Tensor:
    """The lobe's per-coefficient attenuation ``g_l(r)`` for ``roughness [...,1]`` → ``[..., bands²]``."""
    l = _band_of_coefficient(bands, roughness.device, roughness.dtype)
    r2 = roughness.clamp(0.0, 1.0) ** 2
    rate = r2 / (4.0 * (1.0 - r2)).clamp_min(1e-6)  # 1/(2s)
    return torch.exp(-(l * l) * rate)


def _apply_sh(basis: Tensor, sh: Tensor, batch_index: Tensor | None) -> Tensor:
    """``Σ_k basis[m,k] · sh[b_m,k,:]`` for ``basis [M,K]`` → ``[M,3]`` (one matmul, no per-point copy of ``sh``)."""
    if sh.shape[0] == 1 or batch_index is None:
        return basis @ sh[0]
    k = sh.shape[1]
    per_image = (basis @ sh.permute(1, 0, 2).reshape(k, -1)).view(basis.shape[0], sh.shape[0], 3)
    return per_image.gather(1, batch_index.view(-1, 1, 1).expand(-1, 1, 3)).squeeze(1)


def shade(
    normals: Tensor,
    positions: Tensor,
    diffuse: Tensor,
    specular: Tensor,
    roughness: Tensor,
    sh: Tensor,
    mode: RenderMode | str = RenderMode.FULL,
    batch_index: Tensor | None = None,
) -> Tensor:
    """Linear outgoing radiance of surface points (see the module docstring for the formula).

    Points come either flat — ``normals``, ``positions`` (camera space), ``diffuse``,
    ``specular`` ``[M,3]``, ``roughness [M,1]`` with ``batch_index [M]`` naming each point's
    image in ``sh [B,bands²,3]`` — or batched ``[B,...,C]`` with ``batch_index=None``.
    Normals need not be unit length (interpolated normals are renormalised here).
    Returns ``[M,3]`` or ``[B,...,3]``.
    """
    mode = RenderMode(mode)
    bands = _bands_of(sh)
    if mode is RenderMode.ALBEDO:
        return diffuse
    shape = normals.shape
    if batch_index is None:
        if sh.shape[0] not in (1, shape[0]):
            raise ValueError(f"points have batch {shape[0]} but sh has {sh.shape[0]} images; pass one light per image")
        per_image = normals[0].numel() // 3
        batch_index = torch.arange(shape[0], device=normals.device).repeat_interleave(per_image)
        normals, positions = normals.reshape(-1, 3), positions.reshape(-1, 3)
        diffuse, specular, roughness = diffuse.reshape(-1, 3), specular.reshape(-1, 3), roughness.reshape(-1, 1)
    n = torch.nn.functional.normalize(normals, dim=-1)
    kernel = sh.new_tensor(lambert_kernel(bands))[_band_of_coefficient(bands, sh.device, torch.long)]
    if mode is RenderMode.LIGHTING:
        out = _apply_sh(sh_basis(n, bands), sh * kernel[:, None], batch_index) * _INV_PI
        return out.reshape(*shape[:-1], 3)
    v = -torch.nn.functional.normalize(positions, dim=-1)
    reflected = 2.0 * (n * v).sum(-1, keepdim=True) * n - v
    basis = sh_basis(torch.cat([n, reflected]), bands)  # one evaluation for both directions
    basis_n, basis_r = basis.split(n.shape[0])
    irradiance = _apply_sh(basis_n, sh * kernel[:, None], batch_index)
    glossy = _apply_sh(basis_r * specular_band_weights(roughness, bands), sh, batch_index)
    out = diffuse * irradiance * _INV_PI + specular * glossy
    return out.reshape(*shape[:-1], 3)
