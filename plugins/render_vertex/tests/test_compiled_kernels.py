"""The compiled kernels (``nextface_render_vertex.compiled``) against the PyTorch rasteriser.

Random meshes: overlapping triangles at random depths, and jittered grids whose shared
edges run through pixel centres (the tie rule). Visibility, depth and barycentrics must be
equal bit for bit; renders and gradients agree to 1e-4 with the PyTorch path; gradients
match finite differences; reductions are deterministic whatever the thread count.
"""

from __future__ import annotations

import pytest
import torch

from nextface_core.raster import _visible_faces, face_neighbors, rasterize, silhouette_edges
from nextface_core.render import RenderInputs, RenderMode, RenderSettings
from nextface_render_vertex import VertexRenderer, compiled

from nextface_render_vertex.testing import sphere_inputs as _inputs


def test_the_compiled_kernels_are_built_and_load() -> None:
    # CI installs with ./setup.sh, which builds them: this fails there if the build broke
    assert compiled.available(), compiled.status()


def _random_triangles(seed: int, dtype: torch.dtype, size: int = 48, count: int = 60):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(count, 1, 2, generator=g, dtype=torch.float64) * (size + 8) - 4
    pixels = (centres + (torch.rand(count, 3, 2, generator=g, dtype=torch.float64) - 0.5) * size * 0.4).reshape(1, -1, 2)
    depth = (1.0 + 5.0 * torch.rand(count, 1, generator=g, dtype=torch.float64)
             + 0.5 * torch.rand(count, 3, generator=g, dtype=torch.float64)).reshape(1, -1)
    faces = torch.arange(3 * count, dtype=torch.int32).view(count, 3)
    return pixels.to(dtype), depth.to(dtype), faces


def _jittered_grid(seed: int, dtype: torch.dtype, size: int = 40, cells: int = 9):
    """A watertight sheet: grid vertices on pixel centres (x.5) jittered by whole pixels, so
    many edges pass exactly through centres; two triangles per cell, random depths."""
    g = torch.Generator().manual_seed(seed)
    ax = torch.linspace(2.5, size - 2.5, cells + 1, dtype=torch.float64).round() + 0.5
    ys, xs = torch.meshgrid(ax, ax, indexing="ij")
    jitter = torch.randint(-1, 2, (cells + 1, cells + 1, 2), generator=g).to(torch.float64)
    pixels = (torch.stack([xs, ys], -1) + jitter).reshape(1, -1, 2)
    depth = 2.0 + torch.rand(1, pixels.shape[1], generator=g, dtype=torch.float64)
    idx = torch.arange((cells + 1) ** 2).view(cells + 1, cells + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)])
    return pixels.to(dtype), depth.to(dtype), faces.to(torch.int32)


MESHES = [(kind, seed, dtype) for kind in ("triangles", "grid") for seed in (0, 1, 2)
          for dtype in (torch.float32, torch.float64)]


@pytest.mark.parametrize(("kind", "seed", "dtype"), MESHES)
def test_visibility_depth_and_barycentrics_equal_the_torch_rasteriser_exactly(kind, seed, dtype) -> None:
    pixels, depth, faces = (_random_triangles if kind == "triangles" else _jittered_grid)(seed, dtype)
    size = (48, 44)
    face_index, orientation = compiled.zbuffer(pixels, depth, faces, size)
    ref_face, ref_orient = _visible_faces(pixels, depth, faces, *size)
    assert int((ref_face >= 0).sum()) > 300
    assert torch.equal(face_index.long(), ref_face)
    assert torch.equal(orientation, ref_orient)
    covered, weights, covered_depth = compiled.barycentrics(pixels, depth, faces, face_index, size)
    ref = rasterize(pixels, depth, faces, size)
    assert torch.equal(covered, ref.covered)
    assert torch.equal(weights, ref.covered_barycentric)
    assert torch.equal(covered_depth, ref.covered_depth)


def _fields(inputs: RenderInputs) -> dict:
    return {k: getattr(inputs, k) for k in inputs.__dataclass_fields__}


def _leaves(fields: dict) -> dict[str, torch.Tensor]:
    names = ("vertices", "normals", "diffuse", "specular", "roughness", "sh", "focal")
    return {k: fields[k].detach().clone().requires_grad_() for k in names}


CASES = [
    ("float64 full 9 bands", torch.float64, RenderMode.FULL, 9, 1),
    ("float32 full 9 bands", torch.float32, RenderMode.FULL, 9, 1),
    ("float64 full 3 bands, batch 2, per-image maps", torch.float64, RenderMode.FULL, 3, 2),
    ("float64 lighting", torch.float64, RenderMode.LIGHTING, 9, 1),
    ("float64 albedo", torch.float64, RenderMode.ALBEDO, 4, 1),
]


@pytest.mark.parametrize(("case", "dtype", "mode", "bands", "batch"), CASES, ids=[c[0] for c in CASES])
def test_renders_and_gradients_agree_with_the_torch_path(case, dtype, mode, bands, batch) -> None:
    g = torch.Generator().manual_seed(7)
    inputs, _ = _inputs(size=40, batch=batch, rings=10, segments=16, dtype=dtype)
    fields = _fields(inputs)
    fields["sh"] = (torch.randn(batch, bands * bands, 3, generator=g, dtype=dtype) * 0.3
                    + (torch.arange(bands * bands) == 0).to(dtype)[None, :, None])
    settings = RenderSettings((40, 40), mode=mode)
    if batch > 1:
        fields["vertices"] = fields["vertices"] + torch.tensor([[[0.0, 0.0, 0.0]], [[0.2, -0.1, 0.4]]], dtype=dtype)
        fields["diffuse"] = torch.rand(batch, 12, 20, 3, generator=g, dtype=dtype)  # per image, not square
    weights = torch.rand(batch, 40, 40, 4, generator=g, dtype=dtype)
    results = []
    for kernels in ("compiled", "torch"):
        leaves = _leaves(fields)
        out = VertexRenderer(use_nvdiffrast="never", kernels=kernels).render(RenderInputs(**{**fields, **leaves}), settings)
        loss = (out.image * weights[..., :3]).sum() + (out.mask * weights[..., 3:]).sum()
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        results.append((out, dict(zip(leaves, grads))))
    (fast, fast_grads), (ref, ref_grads) = results
    assert float(ref.mask.detach().sum()) > 200
    assert torch.allclose(fast.image, ref.image, atol=1e-4, rtol=0)
    assert torch.allclose(fast.mask, ref.mask, atol=1e-4, rtol=0)
    for name, want in ref_grads.items():
        got = fast_grads[name]
        if want is None or float(want.abs().max()) == 0.0:
            assert got is None or float(got.abs().max()) == 0.0, name
            continue
        scale = float(want.abs().max())
        assert float((got - want).abs().max()) <= 1e-4 * max(scale, 1.0), (name, float((got - want).abs().max()), scale)


def _shadow_texture(batch: int, dtype: torch.dtype, seed: int = 4) -> torch.Tensor:
    """Shadow factors in [0.2, 1] on a 6² grid (coarser than the maps, as the real 96² one is)."""
    return 0.2 + 0.8 * torch.rand(batch, 6, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize(("dtype", "batch"), [(torch.float64, 1), (torch.float32, 1), (torch.float64, 2)])
def test_shadow_factor_textures_agree_with_the_torch_path_and_finite_differences(dtype, batch) -> None:
    # the factors multiply the sampled diffuse and specular values; their texture gets a gradient
    inputs, settings = _inputs(size=40, batch=batch, rings=10, segments=16, dtype=dtype)
    fields = _fields(inputs)
    weights = torch.rand(batch, 40, 40, 4, generator=torch.Generator().manual_seed(9), dtype=dtype)
    shadow = _shadow_texture(batch, dtype)

    def loss(renderer: VertexRenderer, leaves: dict, factors: torch.Tensor) -> torch.Tensor:
        out = renderer.render_shadowed(RenderInputs(**{**fields, **leaves}), settings, factors)
        return (out.image * weights[..., :3]).sum() + (out.mask * weights[..., 3:]).sum()

    results = []
    for kernels in ("compiled", "torch"):
        renderer = VertexRenderer(use_nvdiffrast="never", kernels=kernels, shadows=False)
        leaves, factors = _leaves(fields), shadow.clone().requires_grad_()
        value = loss(renderer, leaves, factors)
        grads = torch.autograd.grad(value, [factors, *leaves.values()])
        results.append((value.detach(), grads))
    (fast, fast_grads), (ref, ref_grads) = results
    assert float((fast - ref).abs()) <= 1e-4 * max(float(ref.abs()), 1.0)
    for got, want in zip(fast_grads, ref_grads):
        assert float((got - want).abs().max()) <= 1e-4 * max(float(want.abs().max()), 1.0)
    with torch.no_grad():
        unshadowed = loss(VertexRenderer(use_nvdiffrast="never", kernels="compiled", shadows=False), fields, None)
    assert float((fast - unshadowed).abs()) > 0.05 * float(unshadowed.abs())  # the factors darken the render
    if dtype == torch.float64:
        direction = torch.randn(shadow.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
        compiled_renderer = VertexRenderer(use_nvdiffrast="never", kernels="compiled", shadows=False)
        with torch.no_grad():
            fd = (loss(compiled_renderer, fields, shadow + 1e-5 * direction)
                  - loss(compiled_renderer, fields, shadow - 1e-5 * direction)) / 2e-5
        analytic = float((fast_grads[0] * direction).sum())
        assert analytic == pytest.approx(float(fd), rel=1e-4)
        assert abs(analytic) > 1e-2


@pytest.mark.parametrize("name", ["vertices", "normals", "diffuse", "specular", "roughness", "sh", "focal"])
def test_compiled_gradients_match_finite_differences(name: str) -> None:
    inputs, settings = _inputs(size=32)
    base = _fields(inputs)
    renderer = VertexRenderer(use_nvdiffrast="never", kernels="compiled")
    g = torch.Generator().manual_seed(11)
    weights = torch.rand(1, 32, 32, 4, generator=g, dtype=torch.float64)

    def loss(value: torch.Tensor) -> torch.Tensor:
        out = renderer.render(RenderInputs(**{**base, name: value}), settings)
        return (out.image * weights[..., :3]).sum() + (out.mask * weights[..., 3:]).sum()

    value = base[name].clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(value), value)
    direction = torch.randn(value.shape, generator=g, dtype=value.dtype)
    eps = 1e-6 if name in ("vertices", "focal") else 1e-5
    with torch.no_grad():
        fd = float((loss(value + eps * direction) - loss(value - eps * direction)) / (2 * eps))
    analytic = float((grad * direction).sum())
    assert analytic == pytest.approx(fd, rel=0.01, abs=1e-5), (analytic, fd)
    assert abs(analytic) > 1e-3


def test_renders_and_gradients_are_bit_identical_run_to_run_and_across_thread_counts() -> None:
    inputs, settings = _inputs(size=64, batch=2, rings=16, segments=24, dtype=torch.float32)
    fields = _fields(inputs)
    weights = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(5))
    renderer = VertexRenderer(use_nvdiffrast="never", kernels="compiled")
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (threads, threads, 1, 3):
            torch.set_num_threads(n)
            leaves = _leaves(fields)
            out = renderer.render(RenderInputs(**{**fields, **leaves}), settings)
            grads = torch.autograd.grad((out.image * weights).sum() + out.mask.sum(), list(leaves.values()))
            runs.append([out.image, out.mask, *grads])
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


def test_the_renderer_falls_back_to_torch_where_the_kernels_cannot_run() -> None:
    inputs, _ = _inputs(dtype=torch.float64)
    auto = VertexRenderer(use_nvdiffrast="never")
    assert auto.backend_for(inputs) == "compiled"
    assert VertexRenderer(use_nvdiffrast="never", kernels="torch").backend_for(inputs) == "torch"
    half = RenderInputs(**{**_fields(inputs), "vertices": inputs.vertices.to(torch.bfloat16)})
    assert auto.backend_for(half) == "torch"
    with pytest.raises(Exception, match="compiled kernels"):
        VertexRenderer(use_nvdiffrast="never", kernels="compiled").backend_for(half)
    with pytest.raises(ValueError, match="kernels"):
        VertexRenderer(kernels="fast")


def test_silhouette_bits_pack_the_torch_antialias_edges() -> None:
    inputs, _ = _inputs(dtype=torch.float64)
    faces = inputs.faces
    neighbors = face_neighbors(faces)
    orientation = torch.sign(torch.randn(1, faces.shape[0], generator=torch.Generator().manual_seed(3)))
    bits = compiled.silhouette_bits(orientation, neighbors).view(1, -1)
    want = silhouette_edges(orientation, neighbors)
    assert want.any() and not want.all()
    for i in range(3):
        assert torch.equal(((bits >> i) & 1).bool(), want[..., i])
