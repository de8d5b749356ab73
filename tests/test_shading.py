"""The shading model: its diffuse part is the SH irradiance of nextface_core.sh, its
glossy lobe follows the documented per-band attenuation, flat and batched calls agree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nextface_core.render import RenderMode
from nextface_core.sh import irradiance, radiance
from nextface_core.shading import shade, specular_band_weights


def _points(batch: int, count: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    normals = torch.nn.functional.normalize(torch.randn(batch, count, 3, generator=g, dtype=torch.float64), dim=-1)
    positions = torch.randn(batch, count, 3, generator=g, dtype=torch.float64) + torch.tensor([0.0, 0.0, 6.0], dtype=torch.float64)
    diffuse = torch.rand(batch, count, 3, generator=g, dtype=torch.float64)
    specular = torch.rand(batch, count, 3, generator=g, dtype=torch.float64)
    roughness = torch.rand(batch, count, 1, generator=g, dtype=torch.float64)
    sh = torch.randn(batch, 9, 3, generator=g, dtype=torch.float64)
    return normals, positions, diffuse, specular, roughness, sh


def test_diffuse_and_lighting_modes_are_the_sh_irradiance() -> None:
    n, p, d, s, r, sh = _points(2, 50)
    expected = irradiance(n, sh) / math.pi
    assert torch.allclose(shade(n, p, d, s, r, sh, RenderMode.LIGHTING), expected, atol=1e-12)
    assert torch.allclose(shade(n * 3.0, p, d, torch.zeros_like(s), r, sh), d * expected, atol=1e-12)
    assert torch.equal(shade(n, p, d, s, r, sh, "albedo"), d)


def test_specular_lobe_limits_mirror_and_fully_rough() -> None:
    n, p, d, s, r, sh = _points(2, 50, seed=1)
    v = -torch.nn.functional.normalize(p, dim=-1)
    mirror = 2 * (n * v).sum(-1, keepdim=True) * n - v
    glossy = shade(n, p, torch.zeros_like(d), s, torch.zeros_like(r), sh)
    assert torch.allclose(glossy, s * radiance(mirror, sh), atol=1e-12)
    rough = shade(n, p, torch.zeros_like(d), s, torch.ones_like(r), sh)
    mean_radiance = sh[:, None, 0, :] / math.sqrt(4 * math.pi)  # L_00 · Y_00
    assert torch.allclose(rough, s * mean_radiance, atol=1e-9)


def test_band_attenuation_is_close_to_a_normalised_phong_lobe() -> None:
    # the documented approximation: within 0.05 of the exact Phong lobe's Legendre
    # coefficients (s + 1) ∫ cos^s θ P_l(cos θ) d(cos θ) for s = 2/r² − 2 = 20.2
    r = 0.3
    s = 2 / r**2 - 2
    weights = specular_band_weights(torch.tensor([[r]], dtype=torch.float64), 9)[0]
    x = np.linspace(0.0, 1.0, 200001)
    for l in range(9):
        coef = np.zeros(l + 1)
        coef[l] = 1.0
        exact = np.trapz((s + 1) * x**s * np.polynomial.legendre.legval(x, coef), x)
        assert float(weights[l]) == pytest.approx(exact, abs=0.05)
        assert float(weights[l]) == pytest.approx(math.exp(-l * l / (2 * s)), rel=1e-9)


def test_flat_points_with_batch_index_equal_batched_call_and_shared_light() -> None:
    n, p, d, s, r, sh = _points(3, 20, seed=2)
    batched = shade(n, p, d, s, r, sh)
    index = torch.arange(3).repeat_interleave(20)
    flat = shade(*(x.reshape(60, -1) for x in (n, p, d, s, r)), sh, batch_index=index)
    assert torch.allclose(flat.view(3, 20, 3), batched, atol=1e-12)
    shared = shade(n, p, d, s, r, sh[:1])
    assert torch.allclose(shared[1], shade(n[1:2], p[1:2], d[1:2], s[1:2], r[1:2], sh[:1])[0], atol=1e-12)
    with pytest.raises(ValueError, match="sh"):
        shade(n, p, d, s, r, sh[:2])


def test_gradients_wrt_light_roughness_and_normals_match_finite_differences() -> None:
    n, p, d, s, r, sh = _points(2, 3, seed=3)
    r = r.clamp(0.1, 0.9)
    args = (n.requires_grad_(), p, d.requires_grad_(), s.requires_grad_(), r.requires_grad_(), sh.requires_grad_())
    assert torch.autograd.gradcheck(lambda *a: shade(*a), args, eps=1e-6, atol=1e-6)


def test_fast_monomial_form_equals_the_core_sh_basis_in_float32() -> None:
    # shading evaluates the SH through an exact monomial re-expression of sh.sh_basis;
    # in float32 it must agree with the recurrence to well below shading precision
    from nextface_core.sh import sh_basis
    from nextface_core.shading import _sh_contract

    dirs = torch.nn.functional.normalize(torch.randn(2000, 3, generator=torch.Generator().manual_seed(5)), dim=-1)
    weights = torch.randn(1, 81, 4, generator=torch.Generator().manual_seed(6))
    fast = _sh_contract(dirs.t().contiguous(), weights, torch.zeros(2000, dtype=torch.long)).t()
    assert torch.allclose(fast, sh_basis(dirs, 9) @ weights[0], atol=5e-4, rtol=1e-4)


@pytest.mark.parametrize("bands", [1, 2, 3])
def test_every_band_count_shades_and_differentiates(bands: int) -> None:
    n, p, d, s, r, sh = _points(2, 3, seed=4)
    sh = sh[:, : bands * bands].clone().requires_grad_()
    n = n.clone().requires_grad_()
    out = shade(n, p, d, s, r.clamp(0.1, 0.9), sh)
    assert torch.allclose(shade(n, p, d, torch.zeros_like(s), r, sh), d * irradiance(n, sh) / math.pi, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, b: shade(a, p, d, s, r.clamp(0.1, 0.9), b), (n, sh), eps=1e-6, atol=1e-6)
    assert out.shape == (2, 3, 3)
