"""The ``vertex`` renderer end to end: a lit sphere against the analytic SH irradiance,
gradients against finite differences, invariances, modes, the registry, nvdiffrast."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from nextface_core.config import load_config
from nextface_core.errors import BackendUnavailableError, ConfigError
from nextface_core.plugins import PluginRegistry
from nextface_core.render import RenderInputs, RenderMode, RenderSettings
from nextface_core.sh import irradiance
from nextface_render_vertex import VertexRenderer, check, sample_textures
from nextface_render_vertex import nvdiffrast_backend
from nextface_render_vertex.testing import sphere as _sphere
from nextface_render_vertex.testing import sphere_inputs as _inputs

#: the two CPU paths: every end-to-end property holds for both
KERNELS = ["compiled", "torch"]


@pytest.mark.parametrize("kernels", KERNELS)
def test_lit_sphere_matches_the_analytic_sh_irradiance(kernels: str) -> None:
    size = 64
    verts, normals, uv, faces = _sphere(48, 96, 1.0, (0.0, 0.0, 4.0), torch.float32)
    albedo = 0.7
    sh = torch.tensor([[[1.0, 0.9, 0.8], [0.3, 0.0, -0.2], [0.4, 0.2, 0.1], [-0.2, 0.3, 0.0]]])
    inputs = RenderInputs(
        verts, faces, normals, uv.float(),
        diffuse=torch.full((1, 4, 4, 3), albedo), specular=torch.zeros(1, 4, 4, 3), roughness=torch.ones(1, 4, 4, 1),
        sh=sh, focal=torch.tensor([100.0]), principal_point=torch.tensor([[32.0, 32.0]]),
    )
    out = VertexRenderer(use_nvdiffrast="never", kernels=kernels).render(inputs, RenderSettings((size, size)))
    # analytic normal of the true sphere seen through each pixel centre
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    ray = F.normalize(torch.stack([(xs - 32) / 100, (ys - 32) / 100, torch.ones_like(xs)], -1), dim=-1)
    centre = torch.tensor([0.0, 0.0, 4.0])
    b = ray @ centre
    disc = b * b - (centre @ centre - 1.0)
    hit = disc > 0.05  # stay a little inside the silhouette
    t = b - disc.clamp_min(0).sqrt()
    n = ray * t[..., None] - centre
    expected = albedo * irradiance(n[None], sh) / math.pi
    interior = hit & (out.mask[0, ..., 0] > 0.999)
    assert int(interior.sum()) > 1000
    err = (out.image[0][interior] - expected[0][interior]).abs().max()
    assert float(err) < 0.01 * float(expected[0][interior].max())  # tessellation error of a 48×96 sphere
    # the anti-aliased mask integrates to the silhouette's area (a disc of the true sphere)
    silhouette = float((disc > 0).sum())
    assert abs(float(out.mask.sum()) - silhouette) < 0.02 * silhouette


def _directional_fd(loss, tensor: torch.Tensor, direction: torch.Tensor, eps: float) -> float:
    with torch.no_grad():
        plus = loss(tensor + eps * direction)
        minus = loss(tensor - eps * direction)
    return float((plus - minus) / (2 * eps))


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("name", ["vertices", "diffuse", "specular", "roughness", "sh", "focal"])
def test_gradients_match_finite_differences(name: str, kernels: str) -> None:
    base, settings = _inputs()
    renderer = VertexRenderer(use_nvdiffrast="never", kernels=kernels)
    g = torch.Generator().manual_seed(1)
    w_img = torch.rand(1, 32, 32, 3, generator=g, dtype=torch.float64)
    w_mask = torch.rand(1, 32, 32, 1, generator=g, dtype=torch.float64)

    def loss(value: torch.Tensor) -> torch.Tensor:
        fields = {k: getattr(base, k) for k in base.__dataclass_fields__}
        fields[name] = value
        out = renderer.render(RenderInputs(**fields), settings)
        return (out.image * w_img).sum() + (out.mask * w_mask).sum()

    value = getattr(base, name).clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(value), value)
    direction = torch.randn(value.shape, generator=g, dtype=value.dtype)
    eps = 1e-6 if name in ("vertices", "focal") else 1e-4
    fd = _directional_fd(loss, value.detach(), direction, eps)
    analytic = float((grad * direction).sum())
    assert analytic == pytest.approx(fd, rel=0.02, abs=1e-4), (analytic, fd)
    assert abs(analytic) > 1e-3  # the loss really depends on it


@pytest.mark.parametrize("kernels", KERNELS)
def test_image_is_unchanged_under_triangle_reordering(kernels: str) -> None:
    inputs, settings = _inputs(dtype=torch.float32)
    renderer = VertexRenderer(use_nvdiffrast="never", kernels=kernels)
    a = renderer.render(inputs, settings)
    perm = torch.randperm(inputs.faces.shape[0], generator=torch.Generator().manual_seed(2))
    rolled = inputs.faces[perm].roll(1, dims=1)  # reorder faces and the vertices inside each face
    b = renderer.render(RenderInputs(**{**{k: getattr(inputs, k) for k in inputs.__dataclass_fields__}, "faces": rolled}), settings)
    assert torch.allclose(a.image, b.image, atol=1e-5)
    assert torch.allclose(a.mask, b.mask, atol=1e-6)


@pytest.mark.parametrize("kernels", KERNELS)
def test_batch_equals_per_image_with_shared_and_per_image_textures(kernels: str) -> None:
    g = torch.Generator().manual_seed(3)
    inputs, settings = _inputs(batch=2)
    fields = {k: getattr(inputs, k) for k in inputs.__dataclass_fields__}
    fields["vertices"] = inputs.vertices + torch.tensor([[[0.0, 0.0, 0.0]], [[0.3, -0.2, 0.5]]], dtype=torch.float64)
    fields["diffuse"] = torch.rand(2, 16, 16, 3, generator=g, dtype=torch.float64)  # per image
    fields["focal"] = torch.tensor([50.0, 45.0], dtype=torch.float64)
    renderer = VertexRenderer(use_nvdiffrast="never", kernels=kernels)
    together = renderer.render(RenderInputs(**fields), settings)
    for i in range(2):
        single = {k: (v[i : i + 1] if isinstance(v, torch.Tensor) and k not in ("faces", "uv", "specular", "roughness") else v)
                  for k, v in fields.items()}
        renderer.reset()  # image 1 is image 0 moved: the shadows' cache would reuse image 0's visibility
        alone = renderer.render(RenderInputs(**single), settings)
        assert torch.allclose(alone.image, together.image[i : i + 1], atol=1e-10)
        assert torch.allclose(alone.mask, together.mask[i : i + 1], atol=1e-10)
    assert not torch.allclose(together.image[0], together.image[1])


@pytest.mark.parametrize("kernels", KERNELS)
def test_modes_albedo_and_lighting(kernels: str) -> None:
    inputs, settings = _inputs()
    fields = {k: getattr(inputs, k) for k in inputs.__dataclass_fields__}
    renderer = VertexRenderer(use_nvdiffrast="never", kernels=kernels)
    const = torch.full((1, 16, 16, 3), 0.25, dtype=torch.float64)
    albedo = renderer.render(RenderInputs(**{**fields, "diffuse": const}), replace(settings, mode=RenderMode.ALBEDO))
    assert torch.allclose(albedo.image, 0.25 * albedo.mask, atol=1e-12)  # anti-aliased against black
    lighting = renderer.render(inputs, replace(settings, mode=RenderMode.LIGHTING))
    white = renderer.render(RenderInputs(**{**fields, "diffuse": torch.ones_like(const), "specular": torch.zeros_like(const)}),
                            settings)
    assert torch.allclose(lighting.image, white.image, atol=1e-12)


def test_sample_textures_hits_texel_centres_and_stacks_images_without_bleeding() -> None:
    tex = torch.arange(2 * 4 * 4 * 1, dtype=torch.float64).view(2, 4, 4, 1)
    uv = torch.tensor([[0.125, 0.125], [0.875, 0.375], [0.5, 0.999], [0.625, 0.0]], dtype=torch.float64)
    batch = torch.tensor([0, 1, 0, 1])
    (got,) = sample_textures([tex], uv.t(), batch)
    # texel (row 0, col 0) of image 0; (row 1, col 3) of image 1; between rows 3 cols 1/2
    # of image 0 clamped to the last row; row 0 (clamped), between cols 2 and 1.5 of image 1
    assert got[0].tolist() == pytest.approx([0.0, 16 + 7.0, 12 + 1.5, 16 + 2.0])
    # textures of one shape share a grid: same values as one at a time, also next to a
    # texture of another resolution or batch
    other = torch.rand(2, 4, 4, 3, dtype=torch.float64)
    small = torch.rand(1, 2, 2, 2, dtype=torch.float64)
    together = sample_textures([tex, other, small], uv.t(), batch)
    for texture, value in zip((tex, other, small), together):
        assert torch.equal(value, sample_textures([texture], uv.t(), batch)[0])
    assert [v.shape[0] for v in together] == [1, 3, 2]


def test_registered_in_the_registry_with_a_useful_check(tmp_path) -> None:
    registry = PluginRegistry(env={})
    reg = registry.resolve("renderer", "vertex")
    avail = reg.availability()
    assert avail.ok and "compiled kernels: cpu" in avail.detail and "torch rasteriser" in avail.detail
    assert "nvdiffrast" in avail.detail
    assert check().detail == avail.detail
    if not nvdiffrast_backend.available():
        with pytest.raises(BackendUnavailableError, match="nvdiffrast"):
            VertexRenderer(use_nvdiffrast="always").render(*_inputs())
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('[plugins.render_vertex]\nnvdiffrast = "never"\n')
    bad.write_text('[plugins.render_vertex]\nnvdifrast = "never"\n')
    assert registry.create("renderer", "vertex", load_config(good)).use_nvdiffrast == "never"
    with pytest.raises(ConfigError, match="render_vertex"):
        registry.create("renderer", "vertex", load_config(bad))


@pytest.mark.skipif(
    not (torch.cuda.is_available() and nvdiffrast_backend.available()),
    reason="needs a CUDA device and nvdiffrast (not installed on the CI machines)",
)
def test_nvdiffrast_path_matches_the_torch_path_on_cuda() -> None:
    inputs, settings = _inputs(size=64, rings=16, segments=24, dtype=torch.float32)
    fields = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in
              ((k, getattr(inputs, k)) for k in inputs.__dataclass_fields__)}
    cuda_inputs = RenderInputs(**fields)
    fast = VertexRenderer(use_nvdiffrast="always").render(cuda_inputs, settings)
    ref = VertexRenderer(use_nvdiffrast="never").render(cuda_inputs, settings)
    interior = (fast.mask > 0.999) & (ref.mask > 0.999)
    assert int(interior.sum()) > 500
    assert float((fast.image - ref.image).abs()[interior.expand_as(fast.image)].max()) < 1e-3
    assert float((fast.mask - ref.mask).abs().mean()) < 5e-3
    assert float((fast.image - ref.image).abs().mean()) < 5e-3


@pytest.mark.parametrize("kernels", KERNELS)
def test_off_screen_or_behind_camera_renders_empty_with_zero_gradients(kernels: str) -> None:
    inputs, settings = _inputs(batch=2)
    fields = {k: getattr(inputs, k) for k in inputs.__dataclass_fields__}
    renderer = VertexRenderer(use_nvdiffrast="never", kernels=kernels)
    for moved in (inputs.vertices + torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64),
                  inputs.vertices * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)):
        vertices = moved.clone().requires_grad_()
        sh = inputs.sh.clone().requires_grad_()
        out = renderer.render(RenderInputs(**{**fields, "vertices": vertices, "sh": sh}), settings)
        assert float(out.image.detach().abs().sum()) == 0.0 and float(out.mask.detach().sum()) == 0.0
        vg, sg = torch.autograd.grad(out.image.sum() + out.mask.sum(), (vertices, sh), allow_unused=True)
        assert (vg is None or float(vg.abs().sum()) == 0.0) and (sg is None or float(sg.abs().sum()) == 0.0)
