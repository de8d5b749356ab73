"""Baking the photo's unlit residual into the diffuse map (:mod:`nextface_core.bake`)."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from nextface_render_vertex.testing import side_by_side, sphere

from nextface_core.bake import refine_maps, unlit_residual
from nextface_core.config import load_config
from nextface_core.plugins import PluginRegistry
from nextface_core.render import RenderInputs, RenderSettings
from nextface_core.texture import TextureMapper

SIZE = 96
TEXELS = 64


def _scene(diffuse: torch.Tensor, occluder: bool = False) -> RenderInputs:
    """A sphere (uv in the left half of the map) lit mostly from the front, optionally with
    a smaller sphere in front of its centre (uv in the right half)."""
    meshes = [sphere(16, 24, 1.0, (0.0, 0.0, 4.0), torch.float32)]
    if occluder:
        meshes.append(sphere(12, 16, 0.3, (0.0, 0.0, 2.5), torch.float32))
    verts, normals, uv, faces = side_by_side(*meshes, strips=2)
    sh = torch.zeros(1, 9, 3)
    sh[0, 0] = 2.5
    sh[0, 2] = -0.8  # brighter towards the camera
    t = diffuse.shape[1]
    return RenderInputs(vertices=verts, faces=faces, normals=normals, uv=uv, diffuse=diffuse,
                        specular=torch.full((1, t, t, 3), 0.05), roughness=torch.full((1, t, t, 1), 0.4), sh=sh,
                        focal=torch.tensor([SIZE * 1.6]), principal_point=torch.full((1, 2), SIZE / 2.0))


def _smooth_random_map(seed: int) -> torch.Tensor:
    """``[1,T,T,3]`` albedo in [0.2, 0.8] that varies over a few texels (a pixel spans about
    one texel here, so the photo resolves it)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, TEXELS // 4, TEXELS // 4, generator=g)
    return (0.2 + 0.6 * F.interpolate(coarse, size=(TEXELS, TEXELS), mode="bilinear", align_corners=False)).permute(0, 2, 3, 1)


def test_refinement_recovers_the_map_where_seen_and_leaves_the_rest() -> None:
    renderer = PluginRegistry().create("renderer", "vertex", load_config(overrides={"run.device": "cpu"}))
    truth = _smooth_random_map(0)
    photo = renderer.render(_scene(truth), RenderSettings((SIZE, SIZE))).image
    start = torch.full_like(truth, 0.5)
    scene = _scene(start)
    mapper = TextureMapper(scene.uv, scene.faces, TEXELS)
    confidence = unlit_residual(scene, photo, torch.ones_like(photo[..., :1]), mapper, 1).confidence
    seen, unseen = confidence[0, ..., 0] >= 1.0, (confidence[0, ..., 0] == 0) & mapper.coverage
    assert int(seen.sum()) > 150 and int(unseen.sum()) > 400  # the front of the sphere, and its back

    refined, specular = refine_maps(renderer, scene, RenderSettings((SIZE, SIZE)), photo, torch.ones_like(photo[..., :1]), mapper, 4)
    before = float((start - truth)[0][seen].abs().mean())
    after = float((refined - truth)[0][seen].abs().mean())
    assert after <= before / 8, (before, after)
    assert torch.equal(refined[0][unseen], start[0][unseen])  # nothing seen, nothing changed
    assert torch.equal(specular, scene.specular)  # the diffuse map explains it all


def test_where_the_photo_is_darker_than_the_specular_term_the_specular_map_gives_way() -> None:
    """A black patch (an iris, say) under a specular albedo of 0.05, fitted from a map whose
    specular albedo is 0.3: the diffuse map goes to 0 there and the specular map down to the
    truth; elsewhere the specular map keeps its value (the diffuse map takes the residual)."""
    renderer = PluginRegistry().create("renderer", "vertex", load_config(overrides={"run.device": "cpu"}))
    truth = _smooth_random_map(1)
    patch = torch.zeros(TEXELS, TEXELS, dtype=torch.bool)
    patch[24:40, 20:28] = True  # around the point facing the camera (v = 1/2, u = 3/8)
    truth[0][patch] = 0.0
    photo = renderer.render(_scene(truth), RenderSettings((SIZE, SIZE))).image
    start = replace(_scene(torch.full_like(truth, 0.5)), specular=torch.full((1, TEXELS, TEXELS, 3), 0.3))
    mapper = TextureMapper(start.uv, start.faces, TEXELS)
    diffuse, specular = refine_maps(renderer, start, RenderSettings((SIZE, SIZE)), photo, torch.ones_like(photo[..., :1]), mapper, 6)
    inner = torch.zeros_like(patch)
    inner[27:37, 22:26] = True  # away from the patch border, where bilinear lookups blend it
    assert float(specular[0][inner].mean()) <= 0.1, float(specular[0][inner].mean())
    assert float(diffuse[0][inner].max()) <= 0.02
    far = torch.zeros_like(patch)
    far[24:40, 12:16] = True
    assert torch.allclose(specular[0][far], torch.tensor(0.3))
    assert float((specular - specular.mean(-1, keepdim=True)).abs().max()) <= 1e-6  # still grey


def test_texels_behind_a_nearer_surface_or_outside_the_weights_get_no_confidence() -> None:
    scene = _scene(torch.full((1, TEXELS, TEXELS, 3), 0.5), occluder=True)
    mapper = TextureMapper(scene.uv, scene.faces, TEXELS)
    residual = torch.ones(1, SIZE, SIZE, 3)
    weights = torch.ones(1, SIZE, SIZE, 1)
    c = unlit_residual(scene, residual, weights, mapper, 1).confidence[0, ..., 0]
    # a sphere faces the camera at v = 1/2 and 3/4 of its u range (the left half of the map for
    # the big one): the big one's centre hides behind the small sphere, a ring around it does not
    # (the small one hides ±0.37 rad of the big one: ±7 texel rows, ±2 texel columns; a pixel
    # less at its edge, where the z-buffer's neighbourhood already sees the big sphere)
    row, col = TEXELS // 2, 3 * TEXELS // 8
    assert float(c[row - 4 : row + 4, col - 2 : col + 2].max()) == 0.0
    assert float(c[row - 5 : row + 5, col - 4].min()) == 1.0 and float(c[row - 5 : row + 5, col + 3].min()) == 1.0
    assert float(c[row, col + TEXELS // 2]) == 1.0  # the small sphere's own front
    # pixels with weight 0 (a face mask, say) bake nothing
    masked = unlit_residual(scene, residual, torch.zeros_like(weights), mapper, 1).confidence
    assert float(masked.max()) == 0.0


def test_views_of_one_identity_are_averaged_by_confidence() -> None:
    scene = _scene(torch.full((1, TEXELS, TEXELS, 3), 0.5))
    two = replace(scene, vertices=scene.vertices.expand(2, -1, -1), normals=scene.normals.expand(2, -1, -1),
                  sh=scene.sh.expand(2, -1, -1), focal=scene.focal.expand(2), principal_point=scene.principal_point.expand(2, -1))
    mapper = TextureMapper(scene.uv, scene.faces, TEXELS)
    residual = torch.stack([torch.full((SIZE, SIZE, 3), 0.1), torch.full((SIZE, SIZE, 3), 0.3)])
    delta, confidence, _, _ = unlit_residual(two, residual, torch.ones(2, SIZE, SIZE, 1), mapper, 1)
    one = unlit_residual(scene, torch.full((1, SIZE, SIZE, 3), 0.2), torch.ones(1, SIZE, SIZE, 1), mapper, 1).delta
    seen = confidence[0, ..., 0] >= 1.0
    assert delta.shape == (1, TEXELS, TEXELS, 3)
    assert torch.allclose(delta[0][seen], one[0][seen], atol=1e-5)  # the mean of 0.1 and 0.3, unlit
