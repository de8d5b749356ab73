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

Light the face hides from itself (eye sockets, the sides of the nose) is shadowed: a ray
tracer traces it; a rasteriser takes it out of the two terms with the per-vertex factors of
:mod:`nextface_core.shadows` (:class:`~nextface_core.shadows.Shadows`). This module computes
the unshadowed terms.
"""

from __future__ import annotations

import functools
from typing import Sequence

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


def specular_band_weights(roughness: Tensor, bands: int, dim: int = -1) -> Tensor:
    """The specular lobe's per-band attenuation ``g_l(r)``, ``l = 0 … bands−1``.

    Args:
        roughness: float, size 1 along ``dim`` (e.g. ``[...,1]``), clamped to [0, 1].
        bands: 1..9.
        dim: the axis that holds the bands in the result.

    Returns:
        The shape of ``roughness`` with ``bands`` along ``dim`` (e.g. ``[..., bands]``), same
        dtype and device, in (0, 1]; differentiable w.r.t. ``roughness``.
    """
    shape = [1] * roughness.ndim
    shape[dim] = bands
    l = torch.arange(bands, device=roughness.device, dtype=roughness.dtype).view(shape)
    r2 = roughness.clamp(0.0, 1.0) ** 2
    rate = r2 / (4.0 * (1.0 - r2)).clamp_min(1e-6)  # 1/(2s)
    return torch.exp(-(l * l) * rate).clamp_min(1e-30)  # no denormals (they are slow on CPUs)


# --- fast evaluation of the SH basis -----------------------------------------------------
# On the unit sphere every real SH of band l is a polynomial in the monomials x^a y^b z^c
# with c ∈ {0, 1} (z² = 1 − x² − y² removes higher powers of z), of degree ≤ l and of the
# parity of l. So the monomials split into an even and an odd block, each ordered by
# degree, and band l needs only the prefix of its parity's block up to degree l:
# (l+1)(l+2)/2 monomials. ``sh_basis(d)`` restricted to the bands of one parity is
# ``monomials_p(d) @ C_p`` for a constant matrix C_p fitted here once to
# :func:`nextface_core.sh.sh_basis` itself (exact up to rounding; the basis stays defined in
# one place). A contraction ``Σ_k Y_k(d) w_k`` is then ``monomials_p(d) @ (C_p w)`` per
# block, and its derivative along an axis is a matmul with the monomials of the *other*
# parity (∂/∂x of x^a y^b z^c is a·x^(a−1) y^b z^c, one degree lower). Forward and
# backward cost a few matmuls per point set whatever the number of bands; splitting by
# parity halves their size compared with one dense basis. Gradients are tangential-exact:
# directions are unit vectors, and two polynomials equal on the sphere have equal
# derivatives along it (the radial part never reaches a unit-vector input).


def _block_size(parity: int, top: int) -> int:
    """Monomials of parity ``parity`` and degree ≤ ``top`` (0 when top < parity)."""
    return sum(2 * d + 1 for d in range(parity, top + 1, 2))


@functools.lru_cache(maxsize=None)
def _monomial_tables(bands: int) -> tuple[tuple[list[tuple[int, int, int]], ...], tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Per parity p: exponents ``(a, b, c)`` ordered by degree; C_p ``[K_p, bands²]`` float64
    (nonzero only in the columns of bands of parity p); derivative tables ``[3, K_{1−p}, K_p]``
    with ``∂mono_j/∂axis = Σ_i D[axis, i, j] · mono_{1−p, i}``."""
    top = bands - 1
    exps = tuple(
        [(a, d - c - a, c) for d in range(p, top + 1, 2) for c in (0, 1) for a in range(d - c + 1)] for p in (0, 1)
    )
    position = [{e: i for i, e in enumerate(block)} for block in exps]
    gen = torch.Generator().manual_seed(1234)
    dirs = torch.nn.functional.normalize(torch.randn(16 * bands * bands + 64, 3, generator=gen, dtype=torch.float64), dim=-1)
    basis = sh_basis(dirs, bands)
    conv, deriv = [], []
    monomials = _monomial_blocks(dirs.t().contiguous(), bands, (len(exps[0]), len(exps[1])))  # the runtime form
    for p in (0, 1):
        mono = monomials[p].t()  # [directions, K_p]
        c = torch.zeros(len(exps[p]), bands * bands, dtype=torch.float64)
        for l in range(p, bands, 2):
            rows, cols = _block_size(p, l), slice(l * l, (l + 1) * (l + 1))
            c[:rows, cols] = torch.linalg.lstsq(mono[:, :rows], basis[:, cols]).solution
        conv.append(c)
        d = torch.zeros(3, len(exps[1 - p]), len(exps[p]), dtype=torch.float64)
        for j, (a, b, z) in enumerate(exps[p]):
            for axis, (power, lower) in enumerate(((a, (a - 1, b, z)), (b, (a, b - 1, z)), (z, (a, b, z - 1)))):
                if power:
                    d[axis, position[1 - p][lower], j] = power
        deriv.append(d)
    return exps, tuple(conv), tuple(deriv)


def _monomial_blocks(d: Tensor, bands: int, rows: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The first ``rows[p]`` monomials of each parity block at unit ``d [3,M]`` → two ``[rows_p, M]``.

    Degree by degree, each row written once: the z-free rows of degree k are those of
    degree k−1 (the other block) times x, plus y^k; the z rows are those of degree k−1 times z.
    """
    x, y, z = d.unbind(0)
    tops = [max((k for k in range(p, bands, 2) if _block_size(p, k) <= rows[p]), default=-1) for p in (0, 1)]
    top = max(tops)
    blocks = [d.new_empty(_block_size(p, top), d.shape[1]) for p in (0, 1)]
    blocks[0][0] = 1.0
    for k in range(1, top + 1):
        here, there = blocks[k % 2], blocks[1 - k % 2]
        start, below = _block_size(k % 2, k - 2), _block_size(1 - k % 2, k - 3)  # first rows of degree k, k−1
        flat_below = there[below : below + k]  # x^a y^(k−1−a), a = 0..k−1
        torch.mul(flat_below, x, out=here[start + 1 : start + k + 1])
        torch.mul(flat_below[:1], y, out=here[start : start + 1])
        torch.mul(flat_below, z, out=here[start + k + 1 : start + 2 * k + 1])
    return blocks[0][: rows[0]], blocks[1][: rows[1]]


def _per_point(rad: Tensor, batch_index: Tensor, images: int) -> Tensor:
    """Rows ``[images·R, M]`` → each point's own image's rows ``[R, M]``."""
    if images == 1:
        return rad
    rows, points = rad.shape[0] // images, rad.shape[1]
    return rad.view(images, rows, points).gather(0, batch_index.view(1, 1, -1).expand(1, rows, -1))[0]


def _to_images(grad: Tensor, batch_index: Tensor, images: int) -> Tensor:
    """Adjoint of :func:`_per_point`: ``[R, M]`` → ``[images·R, M]`` (zero where a point is another image's)."""
    if images == 1:
        return grad
    full = grad.new_zeros(images, *grad.shape)
    full.scatter_(0, batch_index.view(1, 1, -1).expand(1, *grad.shape), grad[None])
    return full.view(images * grad.shape[0], grad.shape[1])


class _ShContract(torch.autograd.Function):
    """``out[c, m] = Σ_p Σ_g bw_p[g, m] · (w_p[:, image(m)]ᵀ monomials_p(d_m))[g, c]`` for ``directions [3, M]``.

    Per parity block p: ``w_p [K_p, images·G_p·C]`` (columns: image, group, channel; None:
    no such bands) and ``bw_p [G_p, M]`` per-point group weights (None: one group, weight 1).
    Channel-major inside (``[rows, M]``), with the analytic backward described above.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, directions: Tensor, w_e: Tensor | None, w_o: Tensor | None, bw_e: Tensor | None, bw_o: Tensor | None,
        batch_index: Tensor, bands: int, images: int, channels: int,
    ) -> Tensor:
        ws, bws = (w_e, w_o), (bw_e, bw_o)
        points = directions.shape[1]
        used = [0 if w is None else w.shape[0] for w in ws]
        # the backward along directions needs each block's derivative, a degree lower, in the other block
        tops = [max((d for d in range(p, bands, 2) if _block_size(p, d) <= used[p]), default=-1) for p in (0, 1)]
        need = list(used)
        if ctx.needs_input_grad[0]:
            need = [max(used[p], _block_size(p, tops[1 - p] - 1)) for p in (0, 1)]
        mono = _monomial_blocks(directions.detach().contiguous(), bands, (need[0], need[1]))
        out, rads = None, []
        for p in (0, 1):
            rads.append(None)
            if ws[p] is None:
                continue
            rad = _per_point(ws[p].t() @ mono[p][: used[p]], batch_index, images)  # [G·C, M]
            if bws[p] is None:
                part = rad
            else:
                part = (rad.view(bws[p].shape[0], channels, points) * bws[p][:, None]).sum(0)
                rads[p] = rad
            out = part if out is None else out + part
        ctx.save_for_backward(mono[0], mono[1], w_e, w_o, bw_e, bw_o, batch_index, rads[0], rads[1])
        ctx.meta = (bands, images, channels, used, tops)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        mono_e, mono_o, w_e, w_o, bw_e, bw_o, batch_index, rad_e, rad_o = ctx.saved_tensors
        bands, images, channels, used, tops = ctx.meta
        mono, ws, bws, rads = (mono_e, mono_o), (w_e, w_o), (bw_e, bw_o), (rad_e, rad_o)
        _, _, deriv = _monomial_tables(bands)
        grad_t = grad.contiguous()  # [C, M]
        points = grad.shape[1]
        grads_w: list[Tensor | None] = [None, None]
        grads_bw: list[Tensor | None] = [None, None]
        grad_dir = None
        for p in (0, 1):
            if ws[p] is None:
                continue
            if bws[p] is None:
                grad_rad = grad_t
            else:
                groups = bws[p].shape[0]
                if ctx.needs_input_grad[3 + p]:
                    grads_bw[p] = (rads[p].view(groups, channels, points) * grad_t).sum(1)
                grad_rad = (bws[p][:, None] * grad_t).view(groups * channels, points)
            if ctx.needs_input_grad[1 + p]:
                grads_w[p] = mono[p][: used[p]] @ _to_images(grad_rad, batch_index, images).t()
            lower = _block_size(1 - p, tops[p] - 1)
            if ctx.needs_input_grad[0] and lower:
                # ∂rad/∂axis = (D_axis w)ᵀ monomials of the other block, all three axes in one matmul
                d = deriv[p][:, :lower, : used[p]].to(device=grad.device, dtype=grad.dtype)
                slopes = (d @ ws[p]).transpose(1, 2).reshape(-1, lower)  # [3·images·G·C, lower]
                rows = grad_rad.shape[0]
                value = slopes @ mono[1 - p][:lower]  # [3·images·rows, M]
                if images > 1:
                    value = value.view(3, images, rows, points).transpose(0, 1).reshape(images * 3 * rows, points)
                    value = _per_point(value, batch_index, images)
                part = (value.view(3, rows, points) * grad_rad).sum(1)  # [3, M]
                grad_dir = part if grad_dir is None else grad_dir + part
        if ctx.needs_input_grad[0]:
            grad_dir = grad.new_zeros(3, points) if grad_dir is None else grad_dir
        return grad_dir, grads_w[0], grads_w[1], grads_bw[0], grads_bw[1], None, None, None, None


def _sh_contract(
    directions: Tensor,
    weights: Tensor,
    batch_index: Tensor,
    band_weights: Tensor | None = None,
    bands_used: Sequence[int] | None = None,
) -> Tensor:
    """``Σ_k Y_k(d_m) · weights[b_m, k, :]`` for unit ``directions [3,M]``, ``weights [B,K,C]`` → ``[C,M]``.

    With ``band_weights [bands,M]`` each band's term is scaled by its per-point weight (the
    glossy lobe). ``bands_used``: the bands whose weights may be nonzero (default all); the
    others are skipped.
    """
    bands = int(round(weights.shape[1] ** 0.5))
    used = sorted(set(range(bands) if bands_used is None else bands_used))
    _, conv, _ = _monomial_tables(bands)
    band = _band_of_coefficient(bands, weights.device)
    images, channels = weights.shape[0], weights.shape[2]
    ws: list[Tensor | None] = []
    bws: list[Tensor | None] = []
    for p in (0, 1):
        mine = [l for l in used if l % 2 == p]
        if not mine:
            ws.append(None)
            bws.append(None)
            continue
        c = conv[p][: _block_size(p, mine[-1])].to(device=weights.device, dtype=weights.dtype)
        if band_weights is None:
            grouped = weights[:, None]  # [B, 1, K, C]
            bws.append(None)
        else:  # one group per band: its coefficients only
            select = torch.tensor(mine, device=weights.device)
            grouped = weights[:, None] * (band[None, None, :, None] == select[None, :, None, None])  # [B, G, K, C]
            bws.append(band_weights.index_select(0, select))  # [G, M]
        ws.append(torch.einsum("jk,bgkc->jbgc", c, grouped).reshape(c.shape[0], -1))
    return _ShContract.apply(directions, ws[0], ws[1], bws[0], bws[1], batch_index, bands, images, channels)


def _unit(x: Tensor, dim: int) -> Tensor:
    """``x`` scaled to unit length along ``dim`` (zero vectors stay zero); elementwise backward,
    several times faster on CPUs than ``normalize``'s norm backward for millions of points."""
    return x * (x * x).sum(dim, keepdim=True).clamp_min(1e-24).rsqrt()


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

    Points come either flat (``[M,C]`` with ``batch_index``) or batched (``[B,...,C]`` with
    ``batch_index=None``). :func:`shade_channels` is the same on channel-major points.

    Args:
        normals: ``[M,3]`` or ``[B,...,3]`` float camera space; need not be unit length
            (interpolated normals are renormalised here).
        positions: same shape, camera-space points (the view direction is ``-position``).
        diffuse: same shape, linear albedo.
        specular: same shape, linear specular albedo.
        roughness: ``[M,1]`` or ``[B,...,1]`` in [0, 1].
        sh: ``[B,bands²,3]`` light, one per image (``[1,bands²,3]`` shared when batched).
        mode: a :class:`~nextface_core.render.RenderMode` or its value.
        batch_index: ``[M]`` int64 image of each flat point, or None for batched points.

    Returns:
        ``[M,3]`` or ``[B,...,3]`` linear RGB of the dtype of the inputs (``diffuse`` itself
        in albedo mode); differentiable w.r.t. every float input.
    """
    mode = RenderMode(mode)
    if mode is RenderMode.ALBEDO:
        return diffuse
    shape = normals.shape
    if batch_index is None:
        if sh.shape[0] not in (1, shape[0]):
            raise ValueError(f"points have batch {shape[0]} but sh has {sh.shape[0]} images; pass one light per image")
        per_image = normals[0].numel() // 3
        batch_index = torch.arange(shape[0], device=normals.device).repeat_interleave(per_image)
    cols = [t.reshape(-1, t.shape[-1]).t().contiguous() for t in (normals, positions, diffuse, specular, roughness)]
    return shade_channels(*cols, sh, mode, batch_index).t().reshape(*shape[:-1], 3)


def shade_channels(
    normals: Tensor,
    positions: Tensor,
    diffuse: Tensor,
    specular: Tensor,
    roughness: Tensor,
    sh: Tensor,
    mode: RenderMode | str,
    batch_index: Tensor,
) -> Tensor:
    """:func:`shade` for channel-major flat points, what a rasteriser uses (one contiguous
    row per channel: no transposes around the SH evaluations).

    Args:
        normals, positions, diffuse, specular: ``[3,M]`` float, as in :func:`shade`.
        roughness: ``[1,M]`` in [0, 1].
        sh: ``[B,bands²,3]`` light.
        mode: a :class:`~nextface_core.render.RenderMode` or its value.
        batch_index: ``[M]`` int64 image of each point.

    Returns:
        ``[3,M]`` linear RGB of the dtype of the inputs (``diffuse`` itself in albedo mode);
        differentiable w.r.t. every float input.
    """
    mode = RenderMode(mode)
    bands = _bands_of(sh)
    if mode is RenderMode.ALBEDO:
        return diffuse
    n = _unit(normals, 0)
    band = _band_of_coefficient(bands, sh.device)
    kernel = lambert_kernel(bands)
    lit = [l for l in range(bands) if kernel[l] != 0.0]  # the kernel is 0 for odd l > 1
    irradiance = _sh_contract(n, sh * sh.new_tensor(kernel)[band][:, None], batch_index, bands_used=lit)
    if mode is RenderMode.LIGHTING:
        return irradiance * _INV_PI
    v = -_unit(positions, 0)
    reflected = 2.0 * (n * v).sum(0, keepdim=True) * n - v
    glossy = _sh_contract(reflected, sh, batch_index, specular_band_weights(roughness, bands, dim=0))
    return diffuse * irradiance * _INV_PI + specular * glossy
