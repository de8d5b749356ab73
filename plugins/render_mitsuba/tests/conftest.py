"""Small scenes for the Mitsuba renderer tests: a UV sphere in front of the camera."""

from __future__ import annotations

import math

import pytest
import torch

from nextface_core import sh as shlib
from nextface_core.render import RenderInputs, RenderMode, RenderSettings

SIZE = 48  # image side in pixels: small, so every test runs in about a second on 2 cores
FOCAL = 90.0
CENTRE = (0.0, 0.0, 3.0)
RADIUS = 0.5


def uv_sphere(rings: int = 24, radius: float = RADIUS, centre: tuple[float, float, float] = CENTRE):
    """Camera-space UV sphere → ``vertices [N,3]``, unit ``normals [N,3]``, ``uv [N,2]``, ``faces [F,3]`` int32.

    Faces are counter-clockwise seen from outside (so front faces are CCW seen from the camera).
    """
    theta = torch.linspace(0.0, math.pi, rings)
    phi = torch.linspace(0.0, 2.0 * math.pi, 2 * rings)
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    normals = torch.stack([torch.sin(t) * torch.cos(p), -torch.cos(t), torch.sin(t) * torch.sin(p)], -1).reshape(-1, 3)
    uv = torch.stack([p / (2.0 * math.pi), t / math.pi], -1).reshape(-1, 2)
    idx = torch.arange(rings * 2 * rings).reshape(rings, 2 * rings)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([b, c, d], -1).reshape(-1, 3)])
    return normals * radius + torch.tensor(centre), normals, uv, faces.to(torch.int32)


def lobe_light(direction, strength: float = 0.9, bands: int = 3) -> torch.Tensor:
    """SH ``[1,bands²,3]`` of the positive light ``1 + strength·(ω·d)`` (brightest towards camera-space ``d``)."""
    d = torch.tensor(direction, dtype=torch.float32)
    d = d / d.norm()
    dirs = shlib.envmap_directions(32)
    env = (1.0 + strength * (dirs @ d))[None, ..., None].expand(1, 32, 64, 3).contiguous()
    return shlib.envmap_to_sh(env, bands)


def sphere_inputs(
    batch: int = 1,
    diffuse: float = 0.8,
    specular: float = 0.0,
    roughness: float = 0.4,
    sh: torch.Tensor | None = None,
    samples: int = 16,
    seed: int = 0,
    mode: RenderMode = RenderMode.FULL,
    size: tuple[int, int] = (SIZE, SIZE),
    principal_point: tuple[float, float] | None = None,
    texels: int = 4,
) -> tuple[RenderInputs, RenderSettings]:
    """RenderInputs of ``batch`` identical spheres with constant textures shared by the batch,
    and the RenderSettings (``size``, ``samples``, ``seed``, ``mode``) to render them with."""
    vertices, normals, uv, faces = uv_sphere()
    h, w = size
    pp = principal_point or (w / 2.0, h / 2.0)
    light = lobe_light((0.0, -1.0, -1.0)) if sh is None else sh
    inputs = RenderInputs(
        vertices=vertices.expand(batch, -1, -1).clone(),
        faces=faces,
        normals=normals.expand(batch, -1, -1).clone(),
        uv=uv,
        diffuse=torch.full((1, texels, texels, 3), diffuse),
        specular=torch.full((1, texels, texels, 3), specular),
        roughness=torch.full((1, texels, texels, 1), roughness),
        sh=light.expand(batch, -1, -1).clone(),
        focal=torch.full((batch,), FOCAL),
        principal_point=torch.tensor([pp] * batch),
    )
    return inputs, RenderSettings(size, samples, seed, mode)


def sphere_surface(size: tuple[int, int] = (SIZE, SIZE), focal: float = FOCAL):
    """Exact ray–sphere hits per pixel centre → ``positions [H,W,3]``, ``normals [H,W,3]``, ``inside [H,W]``.

    ``inside`` keeps pixels well away from the silhouette (where a pixel is partly covered).
    """
    h, w = size
    px, py = torch.meshgrid(torch.arange(w) + 0.5, torch.arange(h) + 0.5, indexing="xy")
    rays = torch.stack([(px - w / 2) / focal, (py - h / 2) / focal, torch.ones_like(px)], -1)
    rays = rays / rays.norm(dim=-1, keepdim=True)
    centre = torch.tensor(CENTRE)
    b = rays @ centre
    disc = b * b - (centre @ centre - RADIUS**2)
    t = b - disc.clamp_min(0.0).sqrt()
    positions = rays * t[..., None]
    return positions, (positions - centre) / RADIUS, disc > 0.15 * disc.max()


@pytest.fixture(scope="module")
def renderer():
    """One renderer per test module: scenes and compiled kernels are reused between tests."""
    from nextface_render_mitsuba.renderer import MitsubaRenderer

    r = MitsubaRenderer()
    yield r
    r.release()


@pytest.fixture(scope="session")
def scenes():
    """The helpers above, for test modules (importlib mode cannot import conftest directly)."""
    import types

    return types.SimpleNamespace(
        inputs=sphere_inputs, surface=sphere_surface, light=lobe_light, mesh=uv_sphere,
        SIZE=SIZE, FOCAL=FOCAL, CENTRE=CENTRE, RADIUS=RADIUS,
    )
