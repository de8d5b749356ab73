"""Per-vertex ↔ texture conversion on the synthetic model (uses the real core rasteriser)."""

from __future__ import annotations

import pytest
import torch

from nextface_core.mesh import symmetry_map
from nextface_core.synthetic import synthetic_model
from nextface_core.texture import TextureMapper, sample
from nextface_core.uvmap import symmetric_uv


@pytest.fixture(scope="module")
def layout() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    model = synthetic_model("small")
    mean = model.shape_mean.double()
    uv = symmetric_uv(mean, model.faces, symmetry_map(mean)[0]).float()
    return uv, model.faces, model.shape_mean


def test_affine_values_round_trip_exactly(layout) -> None:
    uv, faces, _ = layout
    # values affine in uv are reproduced exactly by barycentric + bilinear interpolation,
    # boundary vertices included (the gutters next to a chart extrapolate it linearly)
    values = torch.stack([uv[:, 0], uv[:, 1], 0.3 * uv[:, 0] - 2 * uv[:, 1] + 1], 1)[None].double()
    mapper = TextureMapper(uv, faces, 256)
    back = mapper.to_vertices(mapper.to_texture(values))
    err = (back - values).abs().max(-1).values[0]
    assert float(err.max()) < 1e-5


@pytest.mark.parametrize("resolution", [256, 512])
def test_smooth_values_round_trip_error_bound(layout, resolution: int) -> None:
    uv, faces, mean = layout
    values = torch.cat([mean / 100.0, torch.sin(mean / 30.0)], 1)[None]  # 6 smooth channels, range ~[-1, 1]
    mapper = TextureMapper(uv, faces, resolution)
    texture = mapper.to_texture(values)
    assert texture.shape == (1, resolution, resolution, 6)
    back = mapper.to_vertices(texture)
    err = (back - values).abs()
    # coarse mesh (532 vertices): the error is interpolation error and shrinks with the texel size
    assert float(err.mean()) < 2e-3 * 256 / resolution
    assert float(err.max()) < 0.1


def test_gutters_hold_the_nearest_covered_value(layout) -> None:
    uv, faces, _ = layout
    mapper = TextureMapper(uv, faces, 256)
    assert 0.3 < float(mapper.coverage.float().mean()) < 0.95
    covered = mapper.coverage.reshape(-1)
    assert torch.equal(mapper.texel_vertices, faces[mapper.texel_face])
    assert bool((mapper.texel_weights[covered] >= -1e-5).all())  # inside their triangle
    assert torch.allclose(mapper.texel_weights.sum(1), torch.ones(256 * 256, dtype=mapper.texel_weights.dtype), atol=1e-5)
    texture = mapper.to_texture(torch.ones(1, uv.shape[0], 1))
    assert torch.allclose(texture, torch.ones_like(texture), atol=1e-5)  # no black anywhere, corners included


def test_texture_flip_is_the_mirrored_face(layout) -> None:
    uv, faces, mean = layout
    sym, _ = symmetry_map(mean)
    values = torch.stack([mean[:, 0], mean[:, 1], mean[:, 2]], 1)[None] / 100.0
    mapper = TextureMapper(uv, faces, 256)
    flipped = mapper.to_texture(values).flip(2)  # horizontal flip of the texture
    mirrored = mapper.to_vertices(flipped)
    expected = values[:, sym] * torch.tensor([1.0, 1.0, 1.0])
    assert float((mirrored - expected).abs().mean()) < 2e-3


def test_gradients_flow_both_ways(layout) -> None:
    uv, faces, _ = layout
    mapper = TextureMapper.cached(uv, faces, 256)
    assert TextureMapper.cached(uv.clone(), faces.clone(), 256) is mapper
    values = torch.rand(2, uv.shape[0], 3, requires_grad=True)
    mapper.to_texture(values).sum().backward()
    assert values.grad is not None and float(values.grad.abs().sum()) > 0
    texture = torch.rand(2, 256, 256, 3, requires_grad=True)
    mapper.to_vertices(texture).sum().backward()
    # bilinear weights sum to one per lookup: total gradient = B·N·C
    assert abs(float(texture.grad.sum()) - 2 * uv.shape[0] * 3) < 1e-2


def test_sample_uses_texel_centres() -> None:
    texture = torch.arange(16.0).reshape(1, 4, 4, 1)
    uv = torch.tensor([[[0.125, 0.125], [0.375, 0.125], [0.125, 0.375], [0.25, 0.125]]])
    got = sample(texture, uv)[0, :, 0]
    assert torch.allclose(got, torch.tensor([0.0, 1.0, 4.0, 0.5]))
