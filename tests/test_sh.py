"""Spherical harmonics: orthonormality, conventions, irradiance and env-map conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nextface_core.sh import (
    MAX_BANDS,
    envmap_directions,
    envmap_solid_angles,
    envmap_to_sh,
    irradiance,
    lambert_kernel,
    radiance,
    sh_basis,
    sh_to_envmap,
)


def _sphere_quadrature(n_theta: int, n_phi: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss–Legendre in cos θ × uniform φ: exact for polynomials of degree < 2 n_theta, n_phi.

    Returns camera-space unit directions ``[P,3]`` and weights ``[P]`` (summing to 4π); the
    polar axis is arbitrary (the basis is tested on the whole sphere).
    """
    t, w = np.polynomial.legendre.leggauss(n_theta)
    phi = (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
    ct, p = np.meshgrid(t, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    dirs = np.stack([st * np.cos(p), st * np.sin(p), ct], -1).reshape(-1, 3)
    weights = np.repeat(w, n_phi) * (2 * np.pi / n_phi)
    return torch.from_numpy(dirs), torch.from_numpy(weights)


@pytest.mark.parametrize("bands", range(1, MAX_BANDS + 1))
def test_basis_is_orthonormal_on_the_sphere(bands: int) -> None:
    dirs, w = _sphere_quadrature(bands + 2, 2 * bands + 4)  # exact for degree 2 (bands - 1)
    y = sh_basis(dirs, bands)  # [P, bands²]
    gram = y.T @ (y * w[:, None])
    assert gram.shape == (bands**2, bands**2)
    assert torch.allclose(gram, torch.eye(bands**2, dtype=gram.dtype), atol=1e-10)


def test_lower_bands_are_a_prefix_of_higher_ones() -> None:
    dirs = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    full = sh_basis(dirs, MAX_BANDS)
    for bands in range(1, MAX_BANDS):
        assert torch.allclose(sh_basis(dirs, bands), full[:, : bands**2], atol=1e-12)


def test_known_values_and_the_up_axis() -> None:
    up = torch.tensor([[0.0, -1.0, 0.0]], dtype=torch.float64)  # camera −y is up
    right = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    forward = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    c0, c1 = 0.5 / math.sqrt(math.pi), math.sqrt(3 / (4 * math.pi))
    assert sh_basis(up, 2)[0].tolist() == pytest.approx([c0, 0.0, c1, 0.0], abs=1e-12)
    # band 1: index 1 ∝ camera z, 2 ∝ −y (up), 3 ∝ x
    assert sh_basis(right, 2)[0].tolist() == pytest.approx([c0, 0.0, 0.0, c1], abs=1e-12)
    assert sh_basis(forward, 2)[0].tolist() == pytest.approx([c0, c1, 0.0, 0.0], abs=1e-12)


def test_basis_is_finite_with_gradients_at_the_poles() -> None:
    dirs = torch.tensor([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    sh_basis(dirs, MAX_BANDS).sum().backward()
    assert torch.isfinite(dirs.grad).all()


def test_lambert_kernel_matches_the_integral_of_the_clamped_cosine() -> None:
    # Â_l = 2π ∫_0^1 P_l(t) t dt (Funk–Hecke), integrated with Gauss–Legendre on [0, 1]
    t, w = np.polynomial.legendre.leggauss(40)
    t, w = 0.5 * (t + 1), 0.5 * w
    for l, value in enumerate(lambert_kernel(MAX_BANDS)):
        legendre = np.polynomial.legendre.Legendre.basis(l)(t)
        assert value == pytest.approx(2 * np.pi * np.sum(w * legendre * t), abs=1e-12), f"band {l}"


def _hemisphere_quadrature(normal: torch.Tensor, n_t: int, n_phi: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Directions ``[P,3]`` of the hemisphere around unit ``normal`` and weights ``[P]`` that
    include the cosine ``n·ω``: Gauss–Legendre in ``t = n·ω`` on [0, 1] × uniform φ, exact for
    a polynomial radiance of degree < 2 n_t - 1 and n_phi (the kink of the clamp is on the rim).
    """
    t, w = np.polynomial.legendre.leggauss(n_t)
    t, w = 0.5 * (t + 1), 0.5 * w
    phi = (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
    tt, pp = np.meshgrid(t, phi, indexing="ij")
    st = np.sqrt(1 - tt**2)
    n = normal.numpy()
    a = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(n, a)
    dirs = (st * np.cos(pp))[..., None] * a + (st * np.sin(pp))[..., None] * b + tt[..., None] * n
    weights = np.repeat(w * t, n_phi) * (2 * np.pi / n_phi)
    return torch.from_numpy(dirs.reshape(-1, 3)), torch.from_numpy(weights)


@pytest.mark.parametrize("bands", [1, 3, 9])
def test_irradiance_is_the_integral_of_radiance_times_clamped_cosine(bands: int) -> None:
    torch.manual_seed(bands)
    sh = torch.randn(1, bands**2, 3, dtype=torch.float64)
    normals = torch.nn.functional.normalize(torch.randn(1, 6, 3, dtype=torch.float64), dim=-1)
    expected = []
    for n in normals[0]:
        dirs, w = _hemisphere_quadrature(n, bands + 2, 2 * bands + 2)
        expected.append(torch.einsum("pc,p->c", radiance(dirs[None], sh)[0], w))
    got = irradiance(normals, sh)
    assert got.shape == (1, 6, 3)
    assert torch.allclose(got[0], torch.stack(expected), atol=1e-10)


def test_constant_light_gives_pi_times_radiance() -> None:
    # uniform radiance L: every normal receives E = π L
    sh = torch.zeros(1, 9, 3, dtype=torch.float64)
    sh[0, 0] = torch.tensor([1.0, 2.0, 3.0]) * 2 * math.sqrt(math.pi)  # L = c · Y00 = (1, 2, 3)
    normals = torch.nn.functional.normalize(torch.randn(1, 7, 3, dtype=torch.float64), dim=-1)
    assert torch.allclose(irradiance(normals, sh), math.pi * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def test_envmap_layout() -> None:
    dirs = envmap_directions(8, dtype=torch.float64)
    assert dirs.shape == (8, 16, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(8, 16, dtype=torch.float64))
    assert (dirs[0, :, 1] < -0.9).all() and (dirs[-1, :, 1] > 0.9).all(), "row 0 looks up (camera −y)"
    # azimuth from camera +x towards +z: the column at W/4 looks forward, W/2 towards −x
    height = 64
    mid = envmap_directions(height, dtype=torch.float64)[height // 2]
    assert mid[0, 0] > 0.99 and mid[height // 2, 2] > 0.99 and mid[height, 0] < -0.99
    assert envmap_solid_angles(height, dtype=torch.float64).sum().item() == pytest.approx(4 * math.pi, rel=1e-12)


@pytest.mark.parametrize("bands", [2, 5, 9])
def test_envmap_round_trip(bands: int) -> None:
    torch.manual_seed(0)
    sh = torch.randn(2, bands**2, 3, dtype=torch.float64)
    env = sh_to_envmap(sh, 64)
    assert env.shape == (2, 64, 128, 3)
    back = envmap_to_sh(env, bands)
    assert (back - sh).abs().max().item() < 2e-3 * sh.abs().max().item()
    # the map holds the radiance: a texel equals radiance() in its direction
    dirs = envmap_directions(64, dtype=torch.float64)
    assert torch.allclose(env[:, 10, 20], radiance(dirs[10, 20].expand(2, 1, 3), sh)[:, 0])


def test_bad_band_count_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="between 1 and 9, got 10"):
        sh_basis(torch.tensor([[0.0, 0.0, 1.0]]), 10)


def test_bad_light_and_envmap_shapes_are_clear_errors() -> None:
    normals = torch.tensor([[[0.0, 0.0, 1.0]]])
    with pytest.raises(ValueError, match=r"SH light has shape \(1, 10, 3\); expected \[B, bands², 3\]"):
        irradiance(normals, torch.zeros(1, 10, 3))
    with pytest.raises(ValueError, match=r"SH light has shape \(1, 9\)"):
        radiance(normals, torch.zeros(1, 9))
    with pytest.raises(ValueError, match=r"SH bands must be between 1 and 9, got 10"):
        radiance(normals, torch.zeros(1, 100, 3))
    with pytest.raises(ValueError, match=r"env map has shape \(1, 8, 8, 3\); expected equirectangular"):
        envmap_to_sh(torch.zeros(1, 8, 8, 3), 3)
