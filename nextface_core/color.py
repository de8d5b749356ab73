"""sRGB ↔ linear RGB: the one gamma curve of NextFace (the IEC 61966-2-1 sRGB curve).

Inputs are sRGB; the fit and every renderer work in linear RGB; saved images are sRGB.
"""

from __future__ import annotations

import torch

_THRESHOLD_SRGB = 0.04045
_THRESHOLD_LINEAR = 0.0031308


def srgb_to_linear(srgb: torch.Tensor) -> torch.Tensor:
    """sRGB values in [0, 1] → linear RGB (any shape). Values are clamped to [0, 1] first."""
    x = srgb.clamp(0.0, 1.0)
    return torch.where(x <= _THRESHOLD_SRGB, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Linear RGB → sRGB in [0, 1] (any shape); gradients stay finite at 0."""
    x = linear.clamp(0.0, 1.0)
    return torch.where(
        x <= _THRESHOLD_LINEAR, x * 12.92, 1.055 * x.clamp_min(_THRESHOLD_LINEAR) ** (1.0 / 2.4) - 0.055
    )
