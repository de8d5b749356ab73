"""sRGB ↔ linear RGB: the one gamma curve of NextFace (the IEC 61966-2-1 sRGB curve).

Inputs are sRGB; the fit and every renderer work in linear RGB; saved images are sRGB.
"""

from __future__ import annotations

import torch

_THRESHOLD_SRGB = 0.04045
_THRESHOLD_LINEAR = 0.0031308


def srgb_to_linear(srgb: torch.Tensor) -> torch.Tensor:
    """sRGB → linear RGB with the IEC 61966-2-1 curve.

    Args:
        srgb: float tensor of any shape, values in [0, 1] (clamped to it first).

    Returns:
        Linear RGB, same shape, dtype and device; differentiable.
    """
    x = srgb.clamp(0.0, 1.0)
    return torch.where(x <= _THRESHOLD_SRGB, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Linear RGB → sRGB with the IEC 61966-2-1 curve; gradients stay finite at 0.

    Args:
        linear: float tensor of any shape (clamped to [0, 1] first).

    Returns:
        sRGB in [0, 1], same shape, dtype and device.
    """
    x = linear.clamp(0.0, 1.0)
    return torch.where(
        x <= _THRESHOLD_LINEAR, x * 12.92, 1.055 * x.clamp_min(_THRESHOLD_LINEAR) ** (1.0 / 2.4) - 0.055
    )
