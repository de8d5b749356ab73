"""Test scenes for the ``vertex`` renderer's tests (and anyone checking a renderer against it)."""

from __future__ import annotations

import math

import torch

from nextface_core.render import RenderInputs, RenderSettings


def sphere(rings: int, segments: int, radius: float, centre: tuple[float, float, float], dtype=torch.float64):
    """UV sphere: vertices [1,N,3] (camera space), exact normals, uv [N,2], faces [F,3] int32."""
    theta = torch.linspace(0, math.pi, rings + 1, dtype=dtype)
    phi = torch.linspace(0, 2 * math.pi, segments + 1, dtype=dtype)
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    normals = torch.stack([torch.sin(t) * torch.cos(p), -torch.cos(t), torch.sin(t) * torch.sin(p)], -1).reshape(-1, 3)
    verts = normals * radius + torch.tensor(centre, dtype=dtype)
    uv = torch.stack([p / (2 * math.pi), t / math.pi], -1).reshape(-1, 2)
    idx = torch.arange((rings + 1) * (segments + 1)).view(rings + 1, segments + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    area = torch.linalg.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]]).norm(dim=-1)
    return verts[None], normals[None], uv, faces[area > 1e-12].int()


def side_by_side(*meshes: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], strips: int = 0):
    """Meshes ``(vertices [1,N,3], normals [1,N,3], uv [N,2], faces [F,3])`` joined into one (the
    same four), mesh ``i`` with its uv squeezed into the ``i``-th of ``strips`` (default: one per
    mesh) vertical strips of the maps: per-texel maps (and shadows) need uv that do not overlap."""
    k = strips or len(meshes)
    verts, normals, uvs, faces, offset = [], [], [], [], 0
    for i, (v, n, uv, f) in enumerate(meshes):
        verts.append(v)
        normals.append(n)
        uvs.append(uv * uv.new_tensor([1.0 / k, 1.0]) + uv.new_tensor([i / k, 0.0]))
        faces.append(f.long() + offset)
        offset += v.shape[1]
    return torch.cat(verts, 1), torch.cat(normals, 1), torch.cat(uvs), torch.cat(faces).int()


def sphere_inputs(
    size: int = 32, batch: int = 1, rings: int = 8, segments: int = 12, dtype=torch.float64, seed: int = 0, **kw
) -> tuple[RenderInputs, RenderSettings]:
    """A lit, textured UV sphere in front of the camera as :class:`RenderInputs` (float64 by
    default; ``kw`` replaces fields, ``seed`` seeds the random textures and light), with the
    :class:`RenderSettings` of a ``size`` × ``size`` image."""
    g = torch.Generator().manual_seed(seed)
    verts, normals, uv, faces = sphere(rings, segments, 1.0, (0.1, -0.05, 4.0), dtype)
    tex = 16
    args = dict(
        vertices=verts.expand(batch, -1, -1).clone(),
        faces=faces,
        normals=normals.expand(batch, -1, -1).clone(),
        uv=uv,
        diffuse=torch.rand(1, tex, tex, 3, generator=g, dtype=dtype),
        specular=0.3 * torch.rand(1, tex, tex, 3, generator=g, dtype=dtype),
        roughness=0.2 + 0.6 * torch.rand(1, tex, tex, 1, generator=g, dtype=dtype),
        sh=torch.randn(batch, 9, 3, generator=g, dtype=dtype) * 0.3 + torch.tensor([1.0] + [0.0] * 8, dtype=dtype)[None, :, None],
        focal=torch.full((batch,), size * 1.6, dtype=dtype),
        principal_point=torch.full((batch, 2), size / 2.0, dtype=dtype),
    )
    args.update(kw)
    return RenderInputs(**args), RenderSettings((size, size))
