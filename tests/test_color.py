"""The sRGB curve (IEC 61966-2-1): known values, round trip, continuity and gradients."""

from __future__ import annotations

import pytest
import torch

from nextface_core.color import linear_to_srgb, srgb_to_linear

# (sRGB, linear) pairs from the IEC 61966-2-1 formulas, computed independently
KNOWN = [
    (0.0, 0.0),
    (0.04045, 0.04045 / 12.92),
    (128 / 255, 0.2158605001),
    (0.5, 0.2140411405),
    (0.735356983, 0.5),
    (1.0, 1.0),
]


@pytest.mark.parametrize(("srgb", "linear"), KNOWN)
def test_known_values(srgb: float, linear: float) -> None:
    s = torch.tensor(srgb, dtype=torch.float64)
    lin = torch.tensor(linear, dtype=torch.float64)
    # 1e-7: the standard's rounded constants leave a ~3e-8 gap where its two pieces meet
    assert srgb_to_linear(s).item() == pytest.approx(linear, abs=1e-7)
    assert linear_to_srgb(lin).item() == pytest.approx(srgb, abs=1e-7)


def test_round_trip_over_the_whole_range() -> None:
    x = torch.linspace(0, 1, 10001, dtype=torch.float64)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    assert torch.allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-12)
    # every 8-bit code survives a float32 round trip
    codes = torch.arange(256, dtype=torch.float32) / 255
    assert torch.equal((linear_to_srgb(srgb_to_linear(codes)) * 255).round(), torch.arange(256, dtype=torch.float32))


def test_curve_is_continuous_and_increasing() -> None:
    x = torch.linspace(0, 1, 100001, dtype=torch.float64)
    for f in (srgb_to_linear, linear_to_srgb):
        y = f(x)
        assert (torch.diff(y) > 0).all()
        assert torch.diff(y).max().item() < 1e-3  # no jump at the linear/power threshold


def test_out_of_range_values_are_clamped_and_shapes_kept() -> None:
    x = torch.tensor([[-0.5, 1.5], [0.25, 2.0]])
    expected = torch.tensor([[0.0, 1.0], [srgb_to_linear(torch.tensor(0.25)).item(), 1.0]])
    assert torch.equal(srgb_to_linear(x), expected)
    assert linear_to_srgb(x).shape == (2, 2) and linear_to_srgb(x)[0, 1].item() == pytest.approx(1.0, abs=1e-6)


def test_gradients_are_finite_and_match_finite_differences() -> None:
    x = torch.tensor([0.0, 1e-6, 0.002, 0.0031308, 0.04045, 0.3, 0.9], dtype=torch.float64, requires_grad=True)
    for f in (srgb_to_linear, linear_to_srgb):
        (grad,) = torch.autograd.grad(f(x).sum(), x)
        assert torch.isfinite(grad).all() and (grad > 0).all()
    inner = torch.tensor([0.01, 0.2, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(srgb_to_linear, (inner,), eps=1e-7, atol=1e-7)
    assert torch.autograd.gradcheck(linear_to_srgb, (inner,), eps=1e-7, atol=1e-7)
