"""RenderInputs arrays → redner conventions (``worker/nextface_redner_scene.py``: pure torch, runs
here without redner), and the envmap basis the plugin builds from the core's SH."""

from __future__ import annotations

import math

import pytest
import torch

from nextface_core import sh as shlib
from nextface_core.camera import project
from nextface_core.render import RenderInputs, RenderMode
from nextface_render_redner.renderer import ARRAY_FIELDS, _envmap_basis
from nextface_render_redner.worker import nextface_redner_scene as convert


#: (H, W) of the images the conversions are checked for
SIZE = (40, 56)


def _inputs(batch: int = 2, shared: bool = True) -> RenderInputs:
    g = torch.Generator().manual_seed(0)
    t = 1 if shared else batch
    return RenderInputs(
        vertices=torch.rand(batch, 5, 3, generator=g) + torch.tensor([0.0, 0.0, 2.0]),
        faces=torch.tensor([[0, 1, 2], [2, 3, 4]], dtype=torch.int32),
        normals=torch.nn.functional.normalize(torch.randn(batch, 5, 3, generator=g), dim=-1),
        uv=torch.rand(5, 2, generator=g),
        diffuse=torch.rand(t, 4, 4, 3, generator=g),
        specular=torch.rand(t, 4, 4, 3, generator=g),
        roughness=torch.rand(t, 4, 4, 1, generator=g),
        sh=torch.randn(batch, 9, 3, generator=g),
        focal=torch.tensor([60.0, 75.0][:batch]),
        principal_point=torch.tensor([[30.0, 18.0], [27.5, 22.0]][:batch]),
    )


def _arrays(inputs: RenderInputs, envmap_height: int = 8) -> dict:
    """What the worker receives: the RenderInputs tensors by name plus the plugin's envmap basis."""
    arrays = {name: getattr(inputs, name) for name in ARRAY_FIELDS}
    bands = int(round(inputs.sh.shape[1] ** 0.5))
    arrays["envmap_basis"] = _envmap_basis(bands, envmap_height, inputs.sh.dtype, "cpu")
    return arrays


def _envmaps(sh: torch.Tensor, height: int) -> torch.Tensor:
    bands = int(round(sh.shape[1] ** 0.5))
    return convert.envmaps(sh, _envmap_basis(bands, height, sh.dtype, "cpu"))


def _redner_project(points: torch.Tensor, inputs: RenderInputs) -> torch.Tensor:
    """What redner does with a world point: world → camera-local (inverse ``cam_to_world``),
    ``intrinsic_mat``, perspective divide, then its screen → pixel mapping."""
    world_to_cam = torch.inverse(convert.CAM_TO_WORLD)
    local = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    k = convert.intrinsic_matrices(inputs.focal, inputs.principal_point, SIZE)
    homogeneous = torch.einsum("bij,bnj->bni", k, local)
    return convert.screen_to_pixels(homogeneous[..., :2] / homogeneous[..., 2:3], SIZE)


def test_camera_matches_core_projection() -> None:
    """Points land on the pixels ``camera.project`` gives (1e-4 px), off-centre principal points, W ≠ H."""
    inputs = _inputs()
    points = torch.rand(2, 50, 3) * torch.tensor([2.0, 2.0, 1.0]) - torch.tensor([1.0, 1.0, -2.0])
    torch.testing.assert_close(_redner_project(points, inputs), project(points, inputs.focal, inputs.principal_point), atol=1e-4, rtol=0)


def test_screen_corners() -> None:
    """redner's screen: x from −1 (left) to 1 (right), y from H/W (top) to −H/W (bottom)."""
    corners = torch.tensor([[-1.0, 40 / 56], [1.0, -40 / 56]])
    torch.testing.assert_close(convert.screen_to_pixels(corners, (40, 56)), torch.tensor([[0.0, 0.0], [56.0, 40.0]]))


def test_intrinsics_are_differentiable() -> None:
    focal = torch.tensor([60.0], requires_grad=True)
    pp = torch.tensor([[30.0, 18.0]], requires_grad=True)
    convert.intrinsic_matrices(focal, pp, (40, 56)).sum().backward()
    assert focal.grad.item() == pytest.approx(2 * 2 / 56)
    torch.testing.assert_close(pp.grad, torch.tensor([[2 / 56, -2 / 56]]))


def _redner_envmap_lookup(envmap: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """redner's environment lookup: world → env-local (inverse ``env_to_world``), lat-long uv,
    bilinear with texel centres at (j + ½)/W, wrapping in u. ``envmap [H,W,3]``, ``directions [N,3]``."""
    local = directions @ convert.ENVMAP_TO_WORLD[:3, :3]  # rows times R = Rᵀ d: the inverse rotation
    u = torch.remainder(torch.atan2(local[:, 0], -local[:, 2]) / (2 * math.pi), 1.0)
    v = torch.acos(local[:, 1].clamp(-1, 1)) / math.pi
    h, w = envmap.shape[:2]
    x, y = u * w - 0.5, (v * h - 0.5).clamp(0, h - 1)
    x0, y0 = torch.floor(x), torch.floor(y).clamp(max=h - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.long(), y0.long()
    x1 = (x0 + 1) % w
    x0 = x0 % w
    return ((1 - fy) * ((1 - fx) * envmap[y0, x0] + fx * envmap[y0, x1]) + fy * ((1 - fx) * envmap[y0 + 1, x0] + fx * envmap[y0 + 1, x1]))


def test_envmap_frame_reproduces_the_core_light() -> None:
    """Looked up the way redner does, the converted map gives the core's radiance in every direction
    (within 2 % of the mean: bilinear interpolation of a 64-row map)."""
    d = torch.tensor([0.5, -0.7, -0.3])
    dirs = shlib.envmap_directions(64)
    positive = (1.0 + 0.9 * (dirs @ (d / d.norm())))[None, ..., None].expand(1, 64, 128, 3).contiguous()
    sh = shlib.envmap_to_sh(positive, 3)
    env = _envmaps(sh, 64)[0]
    directions = torch.nn.functional.normalize(torch.randn(500, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    want = shlib.radiance(directions[None], sh)[0]
    got = _redner_envmap_lookup(env, directions)
    assert (got - want).abs().max() < 0.02 * want.mean()
    rotation = convert.ENVMAP_TO_WORLD[:3, :3]
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3))
    assert torch.det(rotation).item() == pytest.approx(1.0)


def test_envmap_is_clamped_at_zero() -> None:
    sh = torch.zeros(1, 4, 3)
    sh[0, 1] = 1.0  # a pure band-1 light is negative on one side
    env = _envmaps(sh, 16)
    assert env.min() == 0.0 and env.max() > 0.1


def test_roughness_matches_the_core_lobe_width() -> None:
    """redner's half-vector exponent 2/ρ − 2 is 4× the core's mirror-lobe exponent 2/r² − 2."""
    r = torch.linspace(0.05, 0.95, 19)
    rho = convert.redner_roughness(r)
    torch.testing.assert_close(2 / rho - 2, 4 * (2 / r**2 - 2), rtol=1e-4, atol=1e-3)
    assert convert.redner_roughness(torch.tensor([0.0])).item() == pytest.approx(convert.redner_roughness(torch.tensor([0.05])).item())


@pytest.mark.parametrize("mode", list(RenderMode))
def test_materials_per_mode(mode: RenderMode) -> None:
    inputs = _inputs()
    maps = convert.materials(_arrays(inputs), mode.value)
    if mode == RenderMode.LIGHTING:
        assert torch.equal(maps["diffuse"], torch.ones(1, 4, 4, 3))
    else:
        assert torch.equal(maps["diffuse"], inputs.diffuse)
    if mode == RenderMode.FULL:
        assert torch.equal(maps["specular"], inputs.specular)
    else:
        assert maps["specular"].abs().sum() == 0
    assert maps["roughness"].shape == inputs.roughness.shape


@pytest.mark.parametrize("shared", [True, False])
def test_scene_dicts_per_image(shared: bool) -> None:
    """One dict per image: its own geometry, camera and light; textures shared or per image."""
    inputs = _inputs(shared=shared)
    scenes = convert.scene_dicts(_arrays(inputs), SIZE, RenderMode.FULL.value)
    assert len(scenes) == 2
    for i, scene in enumerate(scenes):
        assert torch.equal(scene["mesh"]["vertices"], inputs.vertices[i])
        assert torch.equal(scene["mesh"]["normals"], inputs.normals[i])
        assert scene["mesh"]["indices"].dtype == torch.int32
        assert scene["camera"]["resolution"] == (40, 56)
        torch.testing.assert_close(scene["camera"]["intrinsic_mat"], convert.intrinsic_matrices(inputs.focal, inputs.principal_point, (40, 56))[i])
        assert scene["envmap"]["values"].shape == (8, 16, 3)
        torch.testing.assert_close(scene["envmap"]["values"], _envmaps(inputs.sh[i : i + 1], 8)[0])
        assert torch.equal(scene["material"]["diffuse"], inputs.diffuse[0 if shared else i])
    assert not torch.equal(scenes[0]["envmap"]["values"], scenes[1]["envmap"]["values"])


def test_gradients_flow_through_the_conversion() -> None:
    inputs = _inputs()
    for name in ("vertices", "diffuse", "roughness", "sh", "focal"):
        getattr(inputs, name).requires_grad_(True)
    scenes = convert.scene_dicts(_arrays(inputs), SIZE, "full")
    total = sum(
        s["mesh"]["vertices"].sum() + s["material"]["diffuse"].sum() + s["material"]["roughness"].sum()
        + s["envmap"]["values"].sum() + s["camera"]["intrinsic_mat"].sum()
        for s in scenes
    )
    total.backward()
    for name in ("vertices", "diffuse", "roughness", "sh", "focal"):
        assert getattr(inputs, name).grad.abs().sum() > 0, name


def test_envmap_basis_is_the_core_envmap_flipped() -> None:
    """``clamp(basis · sh)`` is the core's ``sh_to_envmap`` clamped at 0 with its columns flipped."""
    sh = torch.randn(2, 16, 3, generator=torch.Generator().manual_seed(3))
    want = shlib.sh_to_envmap(sh, 12).clamp_min(0.0).flip(2)
    torch.testing.assert_close(_envmaps(sh, 12), want, rtol=1e-5, atol=1e-5)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        convert.materials(_arrays(_inputs()), "wireframe")
