"""The light's loss terms (:mod:`nextface_core.losses`): negative radiance, high bands, colour."""

from __future__ import annotations

from dataclasses import replace

import torch

from nextface_core.losses import LossContext, light_chroma, light_negative
from nextface_core.sh import envmap_solid_angles, sh_to_envmap
from nextface_core.testing.kit import synthetic_loss_context


def _context(sh: torch.Tensor) -> LossContext:
    ctx = synthetic_loss_context(2, dtype=torch.float32)
    return replace(ctx, params=replace(ctx.params, sh=sh))


def _reference(sh: torch.Tensor) -> float:
    """∫ min(L, 0)² dω / 4π over a fine latitude–longitude map, over the mean squared ambient term."""
    env = sh_to_envmap(sh.double(), 256)[0]  # [H,2H,3]
    w = envmap_solid_angles(256, dtype=torch.float64)
    integral = (env.clamp(max=0.0).pow(2) * w[..., None]).sum() / (4 * torch.pi * 3)
    return float(integral / sh[0, 0].double().pow(2).mean())


def _descend(term, sh: torch.Tensor, steps: int = 100) -> torch.Tensor:
    """``sh`` after ``steps`` Adam steps on ``term`` alone: where its gradient takes the light."""
    light = sh.clone().requires_grad_(True)
    opt = torch.optim.Adam([light], lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        term(_context(light)).backward()
        opt.step()
    return light.detach()


def test_a_light_with_no_negative_radiance_costs_nothing() -> None:
    sh = torch.zeros(1, 9, 3)
    sh[0, 0] = 1.0
    sh[0, 2] = 0.3  # a lobe too weak to ring below zero
    assert float(light_negative(_context(sh))) == 0.0


def test_negative_radiance_is_measured_as_on_a_fine_map_and_its_gradient_lifts_it() -> None:
    g = torch.Generator().manual_seed(3)
    sh = torch.randn(1, 9, 3, generator=g) * 0.6
    sh[0, 0] += 1.0
    got = float(light_negative(_context(sh)))
    want = _reference(sh)
    assert want > 1e-3  # this light does ring below zero
    assert abs(got - want) <= 0.03 * want, (got, want)

    light = _descend(light_negative, sh)
    assert sh_to_envmap(light, 64).min() > 0.2 * sh_to_envmap(sh, 64).min()


def test_a_light_of_one_colour_costs_no_chroma_whatever_its_direction_and_brightness() -> None:
    warm = torch.tensor([1.0, 0.8, 0.6])
    sh = torch.tensor([1.0, 0.4, -0.7, 0.2, 0.1, 0.0, -0.3, 0.05, 0.2])[None, :, None] * warm
    assert float(light_chroma(_context(sh))) <= 1e-7
    assert float(light_chroma(_context(sh * 5.0))) <= 1e-7


def test_a_band_in_another_colour_costs_its_off_colour_energy_over_the_ambient_and_is_pulled_back() -> None:
    sh = torch.zeros(1, 9, 3)
    sh[0, 0] = torch.tensor([1.0, 1.0, 1.0])  # white ambient
    sh[0, 2] = torch.tensor([0.0, 0.6, 0.0])  # a green band-1 lobe: 0.2 of it is white, the rest off-colour
    off = torch.tensor([-0.2, 0.4, -0.2])
    want = float(off.pow(2).sum() / 3.0)
    assert abs(float(light_chroma(_context(sh))) - want) <= 1e-6
    assert abs(float(light_chroma(_context(sh * 3.0))) - want) <= 1e-6  # relative to the ambient term

    lobe = _descend(light_chroma, sh)[0, 2]
    assert float((lobe - lobe.mean()).abs().max()) < 0.05, lobe  # the lobe turned (nearly) white
