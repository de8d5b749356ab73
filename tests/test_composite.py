"""Renders are premultiplied by coverage, and the fit compares them in front of the photo.

Before ``render.composite`` the photometric loss and the PSNR compared the premultiplied
render with the photo: a silhouette pixel the face half covers was half as bright as the photo
even when the face's colour was exact, so a ray tracer's fit (a few hundred such pixels at
256 px) lost ~8 dB of PSNR at its outline and its gradients pulled at it.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from nextface_core.losses import photometric_loss
from nextface_core.render import RenderOutput, composite
from nextface_core.testing import check_renderer
from nextface_core.testing.kit import synthetic_loss_context


def _silhouette(size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A photo ``[1,H,W,3]``, the face's colour in it and a coverage ramp ``[1,H,W,1]`` from 0 to 1 across a band."""
    g = torch.Generator().manual_seed(0)
    photo = torch.rand(1, size, size, 3, generator=g, dtype=torch.float64) * 0.8 + 0.1
    cols = torch.linspace(-1.0, 2.0, size, dtype=torch.float64).clamp(0.0, 1.0)
    mask = cols.expand(size, size)[None, ..., None].clone()
    return photo, photo.clone(), mask


def test_composite_puts_the_premultiplied_face_in_front_of_the_background() -> None:
    photo, face, mask = _silhouette()
    out = RenderOutput(image=face * mask, mask=mask)
    background = torch.full_like(photo, 0.25)
    shown = composite(out, background)
    assert torch.allclose(shown, face * mask + 0.25 * (1.0 - mask))
    assert torch.allclose(composite(out, photo), photo)  # the face's exact colour: the photo itself, edge included


def test_the_photometric_loss_is_zero_when_the_face_matches_the_photo_at_its_silhouette() -> None:
    photo, face, mask = _silhouette()
    ctx = synthetic_loss_context(2)
    ctx = replace(ctx, render=RenderOutput(image=face * mask, mask=mask), images=photo, valid=torch.ones_like(mask),
                  face_mask=None)
    assert float(photometric_loss(ctx)) < 1e-12  # comparing the image itself with the photo gave 0.053
    darker = replace(ctx, render=RenderOutput(image=0.9 * face * mask, mask=mask))
    assert float(photometric_loss(darker)) > 0.01


def test_mitsuba_renders_premultiplied_images() -> None:
    from nextface_core.config import load_config
    from nextface_core.plugins import PluginRegistry

    mitsuba = PluginRegistry().create("renderer", "mitsuba", load_config(overrides={"run.device": "cpu"}))
    # atol: a batch's images draw other samples than each alone does (its noise, not its premultiplication)
    assert "float32: image premultiplied by coverage" in check_renderer(mitsuba, image_size=32, atol=0.1)
