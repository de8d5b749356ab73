"""The Mitsuba renderer against the core's camera, SH light and shading definitions (real Mitsuba, LLVM backend)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nextface_core.camera import project
from nextface_core.render import RenderInputs, RenderMode, RenderSettings
from nextface_core.shading import shade


def test_projection_matches_core_camera(renderer, scenes) -> None:
    """A small square lands where ``camera.project`` puts it: off-centre principal point, non-square image."""
    h, w = 40, 56
    focal, pp = torch.tensor([70.0]), torch.tensor([[31.0, 17.5]])
    centre = torch.tensor([0.23, 0.11, 2.0])
    half = 0.02  # about 1.4 px on screen; z is constant, so its projection is an exact square
    corners = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]]) * half + centre
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]], dtype=torch.int32)
    normals = torch.tensor([0.0, 0.0, -1.0]).expand(4, 3)
    inputs = RenderInputs(
        corners[None], faces, normals[None].clone(), torch.zeros(4, 2), torch.ones(1, 2, 2, 3), torch.zeros(1, 2, 2, 3),
        torch.full((1, 2, 2, 1), 0.5), torch.ones(1, 1, 3), focal, pp,
    )
    mask = renderer.render(inputs, RenderSettings((h, w), samples=64)).mask[0, ..., 0]
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    centroid = torch.stack([(mask * xs).sum(), (mask * ys).sum()]) / mask.sum()
    expected = project(centre[None, None], focal, pp)[0, 0]
    assert (centroid - expected).abs().max() < 0.5, (centroid, expected)
    assert mask.sum() == pytest.approx((2 * half * 70.0 / 2.0) ** 2, rel=0.1)  # the square's area in pixels


def test_envmap_orientation_brightest_side(renderer, scenes) -> None:
    """A white Lambertian sphere under light from camera +x / up (−y) / towards the camera is brightest there."""
    _, normals, inside = scenes.surface()
    for direction in ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0), (-1.0, 1.0, 0.0)):
        inputs, settings = scenes.inputs(diffuse=1.0, sh=scenes.light(direction, strength=1.0), samples=8)
        image = renderer.render(inputs, settings).image[0, ..., 0]
        d = torch.tensor(direction) / torch.tensor(direction).norm()
        facing = (normals @ d)[inside]
        bright, dark = image[inside][facing > 0.5].mean(), image[inside][facing < -0.2].mean()
        if (facing < -0.2).any():
            assert bright > 1.5 * dark, (direction, bright, dark)
        top = torch.topk(image[inside], 20).indices
        assert facing[top].mean() > 0.5, direction


@pytest.mark.parametrize("mode", [RenderMode.LIGHTING, RenderMode.FULL, RenderMode.ALBEDO])
def test_matches_core_shading_on_a_convex_object(renderer, scenes, mode) -> None:
    """Per-pixel agreement with ``nextface_core.shading.shade`` on a sphere (convex: no self-shadowing).

    Tolerances: mean over the interior within 2 % (albedo exact); mean absolute per-pixel error
    below 6 % of the mean (Monte Carlo noise at 32 spp).
    """
    positions, normals, inside = scenes.surface()
    inputs, settings = scenes.inputs(diffuse=0.6, specular=0.3, roughness=0.3, samples=32, mode=mode)
    image = renderer.render(inputs, settings).image[0]
    h, w = settings.image_size
    ref = shade(
        normals[None], positions[None], torch.full((1, h, w, 3), 0.6), torch.full((1, h, w, 3), 0.3),
        torch.full((1, h, w, 1), 0.3), inputs.sh, mode,
    )[0]
    got, want = image[inside], ref[inside]
    if mode == RenderMode.ALBEDO:
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        return
    assert got.mean() == pytest.approx(want.mean().item(), rel=0.02)
    assert (got - want).abs().mean() < 0.06 * want.mean()


def test_image_changes_with_the_light(renderer, scenes) -> None:
    """Doubling the light doubles the image (same seed); moving it changes which side is bright."""
    base, settings = scenes.inputs(samples=4)
    image = renderer.render(base, settings).image
    doubled = renderer.render(dataclasses.replace(base, sh=2.0 * base.sh), settings).image
    torch.testing.assert_close(doubled, 2.0 * image, rtol=1e-4, atol=1e-5)
    moved = renderer.render(dataclasses.replace(base, sh=scenes.light((1.0, 0.0, 0.0))), settings).image
    assert (moved - image).abs().mean() > 0.05 * image.mean()


def test_deterministic_for_a_seed(renderer, scenes) -> None:
    inputs, settings = scenes.inputs(samples=2, specular=0.2)
    a, b = renderer.render(inputs, settings).image, renderer.render(inputs, settings).image
    c = renderer.render(inputs, dataclasses.replace(settings, seed=1)).image
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert (a - c).abs().max() > 1e-3


def test_batch_equals_per_image(renderer, scenes) -> None:
    """Two images with their own vertices, light and focal, shared textures: batch == one at a time."""
    batch, settings = scenes.inputs(batch=2, samples=4, specular=0.2)
    batch.vertices[1] += torch.tensor([0.1, -0.05, 0.2])
    batch.sh[1] = scenes.light((1.0, 0.0, -0.5))[0]
    batch.focal[1] = 80.0
    together = renderer.render(batch, settings)
    for i in range(2):
        one = dataclasses.replace(
            batch, vertices=batch.vertices[i : i + 1], normals=batch.normals[i : i + 1], sh=batch.sh[i : i + 1],
            focal=batch.focal[i : i + 1], principal_point=batch.principal_point[i : i + 1],
        )
        alone = renderer.render(one, settings)
        torch.testing.assert_close(together.image[i], alone.image[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(together.mask[i], alone.mask[0], rtol=0, atol=1e-6)
    assert (together.image[0] - together.image[1]).abs().max() > 0.1


def test_rendering_again_before_backward_keeps_gradients_right(renderer, scenes) -> None:
    """A preview (no grad) and a second differentiable render between a render and its backward
    leave that render's gradients exactly as without them."""
    base, settings = scenes.inputs(samples=4, specular=0.2)

    def leaves():
        return base.sh.clone().requires_grad_(True), base.vertices.clone().requires_grad_(True), base.diffuse.clone().requires_grad_(True)

    sh, vertices, diffuse = leaves()
    renderer.render(dataclasses.replace(base, sh=sh, vertices=vertices, diffuse=diffuse), settings).image.sum().backward()
    reference = (sh.grad, vertices.grad, diffuse.grad)

    sh, vertices, diffuse = leaves()
    first = renderer.render(dataclasses.replace(base, sh=sh, vertices=vertices, diffuse=diffuse), settings)
    other = dataclasses.replace(base, vertices=base.vertices + 0.1, diffuse=0.2 * base.diffuse, sh=2 * base.sh, focal=base.focal * 1.3)
    with torch.no_grad():
        renderer.render(other, settings)
    second_sh = other.sh.clone().requires_grad_(True)
    second = renderer.render(dataclasses.replace(other, sh=second_sh), settings)
    first.image.sum().backward()
    for got, want in zip((sh.grad, vertices.grad, diffuse.grad), reference):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    second.image.sum().backward()
    assert second_sh.grad.abs().sum() > 0


def test_bad_inputs_are_clear_errors(renderer, scenes) -> None:
    base, settings = scenes.inputs(samples=1)
    with pytest.raises(ValueError, match="samples must be ≥ 1"):
        renderer.render(base, dataclasses.replace(settings, samples=0))
    faces = base.faces.clone()
    faces[0, 0] = base.vertices.shape[1]
    with pytest.raises(ValueError, match="faces index vertices outside"):
        renderer.render(dataclasses.replace(base, faces=faces), settings)


def test_non_square_textures(renderer, scenes) -> None:
    """Textures need not be square: a 4×8 diffuse map of 0.5 renders like a 4×4 one."""
    base, settings = scenes.inputs(samples=2, mode=RenderMode.ALBEDO)
    wide = renderer.render(dataclasses.replace(base, diffuse=torch.full((1, 4, 8, 3), 0.5)), settings).image
    square = renderer.render(dataclasses.replace(base, diffuse=torch.full((1, 4, 4, 3), 0.5)), settings).image
    torch.testing.assert_close(wide, square)


def test_new_faces_with_the_same_count_are_uploaded(renderer, scenes) -> None:
    """Same vertex and face counts, different faces (a new tensor, or the same one edited in place)."""
    base, settings = scenes.inputs(samples=1)
    full = renderer.render(base, settings).mask.sum()
    fewer = base.faces.clone()
    fewer[: len(fewer) // 2] = fewer[0]  # half the triangles collapse onto one
    assert renderer.render(dataclasses.replace(base, faces=fewer), settings).mask.sum() < 0.9 * full
    edited = base.faces.clone()
    assert renderer.render(dataclasses.replace(base, faces=edited), settings).mask.sum() == full
    edited[: len(edited) // 2] = edited[0]
    assert renderer.render(dataclasses.replace(base, faces=edited), settings).mask.sum() < 0.9 * full
