"""Real redner renders and gradients; they run only where pyredner imports (Python ≤ 3.8)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

pytest.importorskip("pyredner", reason="redner is not importable here (it needs Python ≤ 3.8)")

from nextface_core.camera import project  # noqa: E402
from nextface_core.render import RenderInputs  # noqa: E402
from nextface_core.shading import shade  # noqa: E402
from nextface_render_redner.renderer import RednerRenderer  # noqa: E402


def _quad(centre, half: float, size=(40, 56), samples: int = 16) -> RenderInputs:
    """A camera-facing square (normal −z) at ``centre``, white-ish diffuse, lit from the front."""
    c = torch.tensor(centre)
    corners = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]]) * half + c
    sh = torch.zeros(1, 4, 3)
    sh[0, 0] = 2.0
    sh[0, 2] = 0.5  # brighter towards camera −y (up): positive everywhere (|0.5·Y1| < 2·Y0)
    return RenderInputs(
        vertices=corners[None], faces=torch.tensor([[0, 2, 1], [0, 3, 2]], dtype=torch.int32),
        normals=torch.tensor([[[0.0, 0.0, -1.0]] * 4]), uv=torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]),
        diffuse=torch.full((1, 2, 2, 3), 0.5), specular=torch.zeros(1, 2, 2, 3), roughness=torch.full((1, 2, 2, 1), 0.5),
        sh=sh, focal=torch.tensor([70.0]), principal_point=torch.tensor([[31.0, 17.5]]), image_size=size, samples=samples,
    )


def test_projection_matches_core_camera() -> None:
    inputs = _quad((0.23, 0.11, 2.0), 0.02, samples=64)
    mask = RednerRenderer().render(inputs).mask[0, ..., 0]
    h, w = inputs.image_size
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    centroid = torch.stack([(mask * xs).sum(), (mask * ys).sum()]) / mask.sum()
    expected = project(torch.tensor([[[0.23, 0.11, 2.0]]]), inputs.focal, inputs.principal_point)[0, 0]
    assert (centroid - expected).abs().max() < 0.5


def test_lambertian_matches_core_shading_and_light_gradient() -> None:
    """A large diffuse quad: interior pixels equal ρ E(n)/π of the core within 3 %; ∂/∂sh₀ within 5 % of FD."""
    renderer = RednerRenderer()
    inputs = _quad((0.0, 0.0, 2.0), 0.6, samples=64)
    sh = inputs.sh.clone().requires_grad_(True)
    out = renderer.render(dataclasses.replace(inputs, sh=sh))
    inside = out.mask[0, ..., 0] > 0.999
    n = torch.tensor([[[0.0, 0.0, -1.0]]])
    want = shade(n, torch.tensor([[[0.0, 0.0, 2.0]]]), torch.full((1, 1, 3), 0.5), torch.zeros(1, 1, 3),
                 torch.full((1, 1, 1), 0.5), inputs.sh.detach())[0, 0]
    got = out.image[0][inside].mean(0)
    torch.testing.assert_close(got, want, rtol=0.03, atol=0.0)
    out.image.sum().backward()
    step = 0.1
    plus, minus = inputs.sh.clone(), inputs.sh.clone()
    plus[0, 0, 0] += step
    minus[0, 0, 0] -= step
    fd = (renderer.render(dataclasses.replace(inputs, sh=plus)).image.sum() - renderer.render(dataclasses.replace(inputs, sh=minus)).image.sum()) / (2 * step)
    assert sh.grad[0, 0, 0].item() == pytest.approx(fd.item(), rel=0.05)


def test_batch_equals_per_image() -> None:
    renderer = RednerRenderer()
    one = _quad((0.0, 0.0, 2.0), 0.4, samples=4)
    batch = dataclasses.replace(
        one, vertices=one.vertices.repeat(2, 1, 1), normals=one.normals.repeat(2, 1, 1), sh=torch.cat([one.sh, 2 * one.sh]),
        focal=one.focal.repeat(2), principal_point=one.principal_point.repeat(2, 1),
    )
    images = renderer.render(batch).image
    torch.testing.assert_close(images[0], renderer.render(one).image[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(images[1], 2 * images[0], rtol=1e-3, atol=1e-4)
