"""Self-shadowing (nextface_core.shadows) and the vertex renderer's shadows, on spheres whose
shadows are known: a convex sphere casts none on itself; a small sphere between a large one
and the light casts one on it that moves away from the light as the light moves."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from nextface_render_vertex import VertexRenderer
from nextface_render_vertex.testing import side_by_side, sphere

from nextface_core.render import RenderInputs, RenderMode, RenderSettings
from nextface_core.shadows import MOVE_TOLERANCE, Shadows, Visibility
from nextface_core.synthetic.reflectance import soft_light

SIZE = 96


def _plane(n: int = 41, half: float = 1.5, z: float = 4.0) -> tuple[torch.Tensor, ...]:
    """An n×n grid square of side 2·half at depth z facing the camera: vertices ``[1,N,3]``,
    normals, uv ``[N,2]``, faces ``[F,3]`` (counter-clockwise seen from the camera)."""
    s = torch.linspace(-half, half, n)
    y, x = torch.meshgrid(s, s, indexing="ij")
    verts = torch.stack([x.reshape(-1), y.reshape(-1), torch.full((n * n,), z)], 1)
    i = torch.arange(n - 1)
    r, c = torch.meshgrid(i, i, indexing="ij")
    a = (r * n + c).reshape(-1)
    faces = torch.cat([torch.stack([a, a + n + 1, a + 1], 1), torch.stack([a, a + n, a + n + 1], 1)]).int()
    uv = (verts[:, :2] + half) / (2 * half)
    return verts[None], torch.tensor([0.0, 0.0, -1.0]).expand(1, n * n, 3), uv, faces


def _scene(light_from: tuple[float, float, float], occluder: bool = True, surface: str = "plane") -> RenderInputs:
    """A plane (or a unit sphere) 4 in front of the camera and (``occluder``) a sphere of
    radius 0.3 in front of it, lit mostly from ``light_from`` (camera space, towards the
    light). Each has its own half of the maps: shadows, like the maps, need uv that do not overlap."""
    meshes = [_plane() if surface == "plane" else sphere(24, 48, 1.0, (0.0, 0.0, 4.0), torch.float32)]
    if occluder:
        meshes.append(sphere(12, 16, 0.3, (0.0, 0.0, 3.4), torch.float32))
    verts, normals, uv, faces = side_by_side(*meshes, strips=2)
    t = 64
    return RenderInputs(vertices=verts, faces=faces, normals=normals, uv=uv, diffuse=torch.full((1, t, t, 3), 0.6),
                        specular=torch.full((1, t, t, 3), 0.05), roughness=torch.full((1, t, t, 1), 0.4),
                        sh=soft_light(light_from, (1.0, 1.0, 1.0), ambient=0.1, bands=9, sharpness=0.03),
                        focal=torch.tensor([SIZE * 1.2]), principal_point=torch.full((1, 2), SIZE / 2.0))


#: the plane's vertices
PLANE = slice(0, 41 * 41)


def test_a_convex_sphere_does_not_shadow_itself() -> None:
    inputs = _scene((0.3, -0.4, -1.0), occluder=False, surface="sphere")
    diffuse, specular = Visibility.of(inputs.vertices, inputs.normals, inputs.vertices, inputs.faces).factors(inputs.sh)
    assert float(diffuse.min()) > 0.97 and float(diffuse.mean()) > 0.999, (float(diffuse.min()), float(diffuse.mean()))
    # the glossy lobe loses what lies below the horizon only where the view grazes the surface
    facing = (inputs.normals[0] * -F.normalize(inputs.vertices[0], dim=-1)).sum(-1) > 0.5
    assert float(specular[0, :, facing].min()) > 0.94, float(specular[0, :, facing].min())


def test_a_sphere_between_the_light_and_a_plane_shadows_it_away_from_the_light() -> None:
    centres = []
    for light_x in (0.0, -0.5):
        inputs = _scene((light_x, 0.0, -1.0))
        diffuse, _ = Visibility.of(inputs.vertices, inputs.normals, inputs.vertices, inputs.faces).factors(inputs.sh)
        factor = diffuse[0, :, PLANE].mean(0)
        shadowed = factor < 0.5
        assert 10 < int(shadowed.sum()) < 200, int(shadowed.sum())  # a shadow on part of the plane
        assert float(factor.max()) > 0.99  # lit fully beside it
        centres.append(inputs.vertices[0, PLANE][shadowed].mean(0))
    assert float(centres[0][:2].norm()) < 0.1  # straight behind the sphere
    # the light moves to −x by 0.5 per unit depth: 0.6 behind the sphere, the shadow moves 0.3 to +x
    assert float(centres[1][0]) == pytest.approx(0.3, abs=0.1), centres[1]


def test_the_vertex_renderer_shadows_only_take_light_away() -> None:
    inputs = _scene((-0.5, 0.0, -1.0))
    for mode in (RenderMode.LIGHTING, RenderMode.FULL):
        settings = RenderSettings((SIZE, SIZE), mode=mode)
        plain = VertexRenderer(shadows=False).render(inputs, settings).image
        shadowed = VertexRenderer(shadows=True).render(inputs, settings).image
        assert float((shadowed - plain).max()) < 1e-5
        darker = (plain - shadowed).mean(-1) > 0.3 * float(plain.max())
        assert int(darker.sum()) > 30  # the shadow on the plane
        assert float(darker.nonzero()[:, 2].float().mean()) > SIZE / 2  # right of the centre, away from the light


def test_the_shadowed_vertex_render_is_closer_to_mitsubas_ray_traced_one() -> None:
    pytest.importorskip("mitsuba")
    from nextface_core.config import load_config
    from nextface_core.plugins import PluginRegistry

    inputs = _scene((-0.5, 0.0, -1.0))
    settings = RenderSettings((SIZE, SIZE), samples=256)
    traced = PluginRegistry().create("renderer", "mitsuba", load_config(overrides={"run.device": "cpu"})).render(inputs, settings)
    inside = (traced.mask > 0.99).expand(-1, -1, -1, 3)

    def psnr(image: torch.Tensor) -> float:
        return -10.0 * math.log10(float((image - traced.image)[inside].pow(2).mean()))

    plain = psnr(VertexRenderer(shadows=False).render(inputs, settings).image)
    shadowed = psnr(VertexRenderer(shadows=True).render(inputs, settings).image)
    assert shadowed > plain + 5.0, (plain, shadowed)


def test_visibility_is_recomputed_only_when_the_geometry_moved() -> None:
    inputs = _scene((0.0, 0.0, -1.0))
    shadows = Shadows()
    first = shadows.visibility(inputs)
    extent = float((inputs.vertices.amax(1) - inputs.vertices.amin(1)).norm())
    centre = inputs.vertices.mean(1, keepdim=True)

    def scaled(by: float) -> RenderInputs:  # every vertex moves by at most `by` · extent
        factor = 1.0 + by * extent / float((inputs.vertices - centre).norm(dim=-1).max())
        return replace(inputs, vertices=centre + (inputs.vertices - centre) * factor)

    assert shadows.visibility(scaled(0.5 * MOVE_TOLERANCE)) is first
    assert shadows.visibility(replace(inputs, vertices=inputs.vertices + 0.1 * extent)) is first  # a translation casts the same shadows
    assert shadows.visibility(scaled(2.0 * MOVE_TOLERANCE)) is not first


def test_baking_divides_by_the_light_that_reaches_a_shadowed_texel() -> None:
    """One baking step recovers the map in the sphere's shadow on the plane: the unlit
    residual is divided by the shadowed irradiance (divided by the whole sky's, a texel
    in a shadow that keeps a third of the light moves only a third of the way)."""
    from nextface_core.bake import refine_maps, unlit_residual
    from nextface_core.texture import TextureMapper

    inputs = _scene((-1.0, 0.0, -1.0))  # the shadow falls beside the sphere, in sight
    g = torch.Generator().manual_seed(0)
    truth = 0.3 + 0.4 * torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(64, 64), mode="bilinear").permute(0, 2, 3, 1)
    renderer = VertexRenderer(shadows=True)
    settings = RenderSettings((SIZE, SIZE))
    photo = renderer.render(replace(inputs, diffuse=truth), settings).image
    mapper = TextureMapper(inputs.uv, inputs.faces, 64)
    diffuse, _ = Visibility.of(inputs.vertices, inputs.normals, inputs.vertices, inputs.faces).factors(inputs.sh)
    seen = unlit_residual(inputs, photo, torch.ones_like(photo[..., :1]), mapper, 1).confidence[0, ..., 0] >= 1.0
    in_shadow = (mapper.to_texture(diffuse.transpose(1, 2))[0].mean(-1) < 0.5) & seen
    assert int(in_shadow.sum()) > 20
    refined, _ = refine_maps(renderer, inputs, settings, photo, torch.ones_like(photo[..., :1]), mapper, 1)
    before = float((inputs.diffuse - truth)[0][in_shadow].abs().mean())
    after = float((refined - truth)[0][in_shadow].abs().mean())
    assert after < 0.25 * before, (before, after)  # 0.118 → 0.020; dividing by the whole sky: → 0.071
