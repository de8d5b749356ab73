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

import functools

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


def _band_of_coefficient(bands: int, device: torch.device) -> Tensor:
    """``l`` of each of the ``bands²`` coefficients → ``[bands²]`` int64."""
    return torch.arange(bands, device=device).repeat_interleave(torch.arange(bands, device=device) * 2 + 1)


def specular_band_weights(roughness: Tensor, bands: int) -> Tensor:
    """The lobe's per-band attenuation ``g_l(r)``, ``l = 0 … bands−1``, for ``roughness [...,1]`` → ``[..., bands]``."""
    l = torch.arange(bands, device=roughness.device, dtype=roughness.dtype)
    r2 = roughness.clamp(0.0, 1.0) ** 2
    rate = r2 / (4.0 * (1.0 - r2)).clamp_min(1e-6)  # 1/(2s)
    return torch.exp(-(l * l) * rate).clamp_min(1e-30)  # no denormals (they are slow on CPUs)


# --- fast evaluation of the SH basis -----------------------------------------------------
# On the unit sphere every real SH of degree ≤ L is a polynomial in the monomials
# x^a y^b z^c with c ∈ {0, 1} and a + b + c ≤ L (z² = 1 − x² − y² removes higher powers of
# z): exactly (L+1)² = bands² monomials. So ``sh_basis(d) = monomials(d) @ C`` for one
# constant bands²×bands² matrix C, fitted here once to :func:`nextface_core.sh.sh_basis`
# itself (exact up to rounding; the basis stays defined in one place). A contraction
# ``Σ_k Y_k(d) w_k`` is then ``monomials(d) @ (C w)``, and its gradient w.r.t. ``d`` is
# again a monomial matmul (∂/∂x of x^a y^b z^c is a·x^(a−1) y^b z^c, another monomial of
# the set), so forward and backward cost a few matmuls per point set whatever the number
# of bands, instead of hundreds of elementwise operations for the recurrence. Gradients
# are tangential-exact: directions are unit vectors, and two polynomials equal on the
# sphere have equal derivatives along it.


@functools.lru_cache(maxsize=None)
def _monomial_tables(bands: int) -> tuple[Tensor, Tensor, list[tuple[int, int]]]:
    """(C ``[K,K]`` float64, derivative matrices ``[3,K,K]``, row ranges where they are nonzero).

    Derivatives lower the degree, so only monomials of degree < top appear in them: two
    contiguous row ranges, which the backward pass uses to skip the others.
    """
    top = bands - 1
    exps = [(a, k - a, c) for c in (0, 1) for k in range(top + 1 - c) for a in range(k + 1)]
    position = {e: i for i, e in enumerate(exps)}
    k = len(exps)
    deriv = torch.zeros(3, k, k, dtype=torch.float64)  # deriv[axis, i, j]: ∂mono_j/∂axis = Σ_i deriv·mono_i
    for j, (a, b, c) in enumerate(exps):
        for axis, (power, lower) in enumerate(((a, (a - 1, b, c)), (b, (a, b - 1, c)), (c, (a, b, c - 1)))):
            if power:
                deriv[axis, position[lower], j] = power
    gen = torch.Generator().manual_seed(1234)
    dirs = torch.nn.functional.normalize(torch.randn(8 * k + 64, 3, generator=gen, dtype=torch.float64), dim=-1)
    conv = torch.linalg.lstsq(_monomials(dirs, top).t(), sh_basis(dirs, bands)).solution
    used = (deriv != 0).any(2).any(0).tolist()
    ranges = [(i, i + 1) for i, flag in enumerate(used) if flag]
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return conv, deriv, merged


def _monomials(d: Tensor, top: int) -> Tensor:
    """``x^a y^b z^c`` of ``d [M,3]`` in the order of :func:`_monomial_tables` → ``[K, M]`` (one row per monomial).

    Channel-major, so every product is one contiguous vector operation; the z-monomials
    are the z-free ones of degree < top times z.
    """
    x, y, z = d.t().contiguous().unbind(0)
    px, py = [torch.ones_like(x)], [torch.ones_like(y)]
    for _ in range(top):
        px.append(px[-1] * x)
        py.append(py[-1] * y)
    k = (top + 1) ** 2
    n_flat = (top + 1) * (top + 2) // 2
    out = d.new_empty(k, d.shape[0])
    row = 0
    for degree in range(top + 1):
        for a in range(degree + 1):
            torch.mul(px[a], py[degree - a], out=out[row])
            row += 1
    torch.mul(out[: k - n_flat], z, out=out[n_flat:])
    return out


class _ShContract(torch.autograd.Function):
    """``out[m] = Σ_g band_weights[g,m] · (monomials(d_m) @ w[:, b_m])[g-th group of C]``.

    ``w [K, images·groups·C]`` (columns: image, group, channel), ``band_weights [G,M]`` or
    None (one group). Channel-major inside (``[cols, M]``), with the analytic backward
    described above.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, directions: Tensor, w: Tensor, band_weights: Tensor | None, batch_index: Tensor, bands: int, images: int
    ) -> Tensor:
        mono = _monomials(directions.detach(), bands - 1)  # [K,M]
        points = mono.shape[1]
        cols = w.shape[1] // images
        rad = w.t() @ mono  # [images·cols, M]
        if images > 1:
            rad = rad.view(images, cols, points).gather(0, batch_index.view(1, 1, -1).expand(1, cols, -1))[0]
        if band_weights is None:
            out = rad
        else:
            groups = band_weights.shape[0]
            out = (rad.view(groups, cols // groups, points) * band_weights[:, None, :]).sum(0)
        ctx.save_for_backward(mono, w, band_weights, batch_index, rad if band_weights is not None else None)
        _, deriv, ctx.ranges = _monomial_tables(bands)
        ctx.deriv = deriv.to(device=w.device, dtype=w.dtype)
        ctx.images = images
        return out.t()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        mono, w, band_weights, batch_index, rad = ctx.saved_tensors
        images, points = ctx.images, mono.shape[1]
        cols = w.shape[1] // images
        grad_t = grad.t().contiguous()  # [C, M]
        grad_bw = None
        if band_weights is None:
            grad_rad = grad_t
        else:
            groups = band_weights.shape[0]
            if ctx.needs_input_grad[2]:
                grad_bw = (rad.view(groups, cols // groups, points) * grad_t).sum(1)
            grad_rad = (band_weights[:, None, :] * grad_t).reshape(cols, points)
        if images > 1:  # each point's gradient goes to its own image's columns
            full = grad_rad.new_zeros(images, cols, points)
            full.scatter_(0, batch_index.view(1, 1, -1).expand(1, cols, -1), grad_rad[None])
            grad_rad = full.view(images * cols, points)
        grad_dir = grad_w = None
        if ctx.needs_input_grad[0] and not ctx.ranges:  # one band: constant in the direction
            grad_dir = grad.new_zeros(points, 3)
        elif ctx.needs_input_grad[0]:  # one axis at a time keeps the [cols, M] temporaries small
            slopes = ctx.deriv @ w  # [3, K, cols], zero outside ctx.ranges
            per_axis = []
            for axis in range(3):
                (lo, hi), *rest = ctx.ranges
                value = slopes[axis, lo:hi].t() @ mono[lo:hi]
                for lo, hi in rest:
                    value.addmm_(slopes[axis, lo:hi].t(), mono[lo:hi])
                per_axis.append((value * grad_rad).sum(0))
            grad_dir = torch.stack(per_axis, -1)
        if ctx.needs_input_grad[1]:
            grad_w = mono @ grad_rad.t()
        return grad_dir, grad_w, grad_bw, None, None, None


def _sh_contract(
    directions: Tensor, weights: Tensor, batch_index: Tensor, band_weights: Tensor | None = None
) -> Tensor:
    """``Σ_k Y_k(d_m) · weights[b_m, k, :]`` for unit ``directions [M,3]``, ``weights [B,K,C]`` → ``[M,C]``.

    With ``band_weights [M,G]`` the C columns are G groups summed with those per-point weights → ``[M, C/G]``.
    """
    bands = int(round(weights.shape[1] ** 0.5))
    conv = _monomial_tables(bands)[0].to(device=weights.device, dtype=weights.dtype)
    w = torch.einsum("jk,bkc->jbc", conv, weights).reshape(conv.shape[0], -1)  # [K, B·C]
    channel_major = None if band_weights is None else band_weights.t().contiguous()  # [G, M]
    return _ShContract.apply(directions, w, channel_major, batch_index, bands, weights.shape[0])


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
    band = _band_of_coefficient(bands, sh.device)
    kernel = sh.new_tensor(lambert_kernel(bands))[band]
    irradiance = _sh_contract(n, sh * kernel[:, None], batch_index)
    if mode is RenderMode.LIGHTING:
        return (irradiance * _INV_PI).reshape(*shape[:-1], 3)
    v = -torch.nn.functional.normalize(positions, dim=-1)
    reflected = 2.0 * (n * v).sum(-1, keepdim=True) * n - v
    # per-band radiance in the mirror direction: weights [B, K, bands·3], nonzero on band(k)
    per_band = sh[:, :, None, :] * torch.nn.functional.one_hot(band, bands).to(sh.dtype)[None, :, :, None]
    weights = specular_band_weights(roughness, bands)
    glossy = _sh_contract(reflected, per_band.reshape(sh.shape[0], sh.shape[1], -1), batch_index, weights)
    out = diffuse * irradiance * _INV_PI + specular * glossy
    return out.reshape(*shape[:-1], 3)
