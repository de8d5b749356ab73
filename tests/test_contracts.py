"""Data contracts: shape validation of MorphableModel, SceneParameters, RenderInputs, LandmarkSet;
MorphableModel.to / truncated; combine."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, replace

import pytest
import torch

from nextface_core.landmarks import LandmarkSet
from nextface_core.model import MorphableModel, combine
from nextface_core.params import SceneParameters
from nextface_core.render import RenderInputs, RenderMode, RenderSettings
from nextface_core.sh import irradiance
from nextface_core.synthetic import synthetic_model


@pytest.fixture(scope="module")
def model() -> MorphableModel:
    return synthetic_model("small")


# --- MorphableModel -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: {"diffuse_mean": m.diffuse_mean[:-1]}, r"diffuse_mean has shape \(\d+, 3\), expected"),
        (lambda m: {"uv": m.uv[:, :1]}, r"uv has shape \(\d+, 1\), expected \(\d+, 2\)"),
        (lambda m: {"shape_var": m.shape_var[:-1]}, r"shape_basis .* / shape_var .* do not match"),
        (lambda m: {"expression_basis": m.expression_basis[:, :-1]}, r"expression_basis .* do not match \[K,\d+,3\]"),
        (lambda m: {"faces": m.faces[:, :2]}, r"faces has shape \(\d+, 2\), expected \[F,3\]"),
        (lambda m: {"specular_basis": m.specular_basis[:-1], "specular_var": m.specular_var[:-1]}, "both must have K_a"),
        (lambda m: {"symmetry": m.symmetry[:-1]}, r"symmetry has shape"),
    ],
)
def test_model_rejects_inconsistent_shapes(model: MorphableModel, change, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(model, **change(model))


def test_model_sizes(model: MorphableModel) -> None:
    assert model.n_vertices == model.shape_mean.shape[0] and model.n_faces == model.faces.shape[0]
    assert (model.n_shape, model.n_expression, model.n_albedo) == (30, 15, 20)


def test_model_to_casts_floats_and_keeps_indices(model: MorphableModel) -> None:
    moved = model.to("cpu", torch.float64)
    assert moved.dtype == torch.float64 and moved.shape_basis.dtype == torch.float64
    assert moved.faces.dtype == torch.int64 and moved.symmetry.dtype == torch.int64
    assert moved.landmarks["ibug68"].vertex_index.dtype == torch.int64
    assert torch.equal(moved.shape_mean.float(), model.shape_mean)
    assert model.dtype == torch.float32, "to() returns a copy"
    assert moved.landmarks["ibug68"].contour.keys() == model.landmarks["ibug68"].contour.keys()


def test_truncated_keeps_the_leading_components(model: MorphableModel) -> None:
    cut = model.truncated(n_shape=5, n_expression=0, n_albedo=3)
    assert (cut.n_shape, cut.n_expression, cut.n_albedo) == (5, model.n_expression, 3)
    assert cut.specular_basis.shape[0] == 3 and cut.specular_var.shape == (3,)
    assert torch.equal(cut.shape_basis, model.shape_basis[:5]) and torch.equal(cut.diffuse_var, model.diffuse_var[:3])
    assert cut.n_vertices == model.n_vertices


def test_combine_is_mean_plus_scaled_basis(model: MorphableModel) -> None:
    coeffs = torch.zeros(2, model.n_shape)
    coeffs[1, 2] = 1.5
    out = combine(model.shape_mean, model.shape_basis, model.shape_var, coeffs)
    assert out.shape == (2, model.n_vertices, 3)
    assert torch.equal(out[0], model.shape_mean)
    expected = model.shape_mean + 1.5 * model.shape_var[2].sqrt() * model.shape_basis[2]
    assert torch.allclose(out[1], expected, atol=1e-4)
    # orthonormal basis: coefficients come back by projection, in standard deviations
    offset = (out[1] - model.shape_mean).reshape(-1)
    recovered = model.shape_basis.reshape(model.n_shape, -1) @ offset / model.shape_var.sqrt()
    assert torch.allclose(recovered, coeffs[1], atol=1e-4)
    # a gathered subset of rows gives the same rows
    rows = torch.tensor([0, 7, 11])
    sub = combine(model.shape_mean[rows], model.shape_basis[:, rows], model.shape_var, coeffs)
    assert torch.allclose(sub, out[:, rows], atol=1e-5)


# --- SceneParameters ------------------------------------------------------------------------


def test_neutral_scene_is_frontal_at_distance_with_ambient_light() -> None:
    focal = torch.tensor([500.0, 600.0, 700.0])
    p = SceneParameters.neutral(3, 10, 5, 4, bands=3, focal=focal, distance=450.0, shared_identity=True, ambient=0.5)
    assert p.shared_identity and p.shape.shape == (1, 10) and p.expression.shape == (3, 5)
    assert p.sh.shape == (3, 9, 3) and torch.equal(p.translation[:, 2], torch.full((3,), 450.0))
    assert torch.equal(p.focal, focal) and p.focal is not focal
    # the constant light gives irradiance ambient · π for every normal
    normals = torch.nn.functional.normalize(torch.randn(3, 4, 3), dim=-1)
    assert torch.allclose(irradiance(normals, p.sh), torch.full((3, 4, 3), 0.5 * math.pi), atol=1e-5)
    assert set(p.tensors()) == {"shape", "expression", "diffuse", "specular", "specular_log_scale", "rotation", "translation",
                                "focal", "sh"}
    assert torch.equal(p.specular_log_scale, torch.zeros(1, 1))  # the model's own specular level


def test_scene_rejects_mismatched_rows() -> None:
    p = SceneParameters.neutral(2, 4, 3, 2, bands=2, focal=torch.tensor([500.0, 500.0]), distance=400.0)
    with pytest.raises(ValueError, match="identity tensors have 3 rows; expected 1 .shared. or 2"):
        replace(p, shape=torch.zeros(3, 4))
    with pytest.raises(ValueError, match="diffuse has 1 rows, expected 2"):
        replace(p, diffuse=torch.zeros(1, 2))
    with pytest.raises(ValueError, match="focal has 3 rows, expected 2"):
        replace(p, focal=torch.zeros(3))


def test_detached_copies_do_not_share_storage() -> None:
    p = SceneParameters.neutral(1, 4, 3, 2, bands=2, focal=torch.tensor([500.0]), distance=400.0)
    p.rotation.requires_grad_(True)
    d = p.detached()
    assert not d.rotation.requires_grad
    d.translation[0, 2] = 1.0
    assert p.translation[0, 2] == 400.0


# --- RenderInputs ---------------------------------------------------------------------------


def _inputs(**change) -> RenderInputs:
    b, n = 2, 5
    values = dict(
        vertices=torch.zeros(b, n, 3),
        faces=torch.zeros(4, 3, dtype=torch.int32),
        normals=torch.zeros(b, n, 3),
        uv=torch.zeros(n, 2),
        diffuse=torch.zeros(1, 8, 8, 3),
        specular=torch.zeros(b, 8, 8, 3),
        roughness=torch.zeros(1, 8, 8, 1),
        sh=torch.zeros(b, 9, 3),
        focal=torch.ones(b),
        principal_point=torch.zeros(b, 2),
    )
    values.update(change)
    return RenderInputs(**values)


def test_render_inputs_accept_valid_shapes() -> None:
    inputs = _inputs()
    assert inputs.batch_size == 2 and RenderSettings((16, 16)).mode is RenderMode.FULL
    assert RenderMode("albedo") is RenderMode.ALBEDO


def test_render_settings_are_frozen_and_normalised() -> None:
    settings = RenderSettings([24, 32], samples=4, seed=7, mode="albedo")
    assert settings == RenderSettings((24, 32), 4, 7, RenderMode.ALBEDO)
    assert settings.image_size == (24, 32) and settings.mode is RenderMode.ALBEDO
    with pytest.raises(FrozenInstanceError):
        settings.seed = 8  # type: ignore[misc]
    assert replace(settings, seed=8).seed == 8 and settings.seed == 7


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_size": (0, 16)}, r"image_size must be \(H, W\) with H, W ≥ 1, got \(0, 16\)"),
        ({"image_size": (16,)}, r"image_size must be \(H, W\)"),
        ({"samples": 0}, r"samples must be ≥ 1, got 0"),
        ({"mode": "wireframe"}, r"mode must be one of full, albedo, lighting, got 'wireframe'"),
    ],
)
def test_render_settings_reject_bad_values(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RenderSettings(**{"image_size": (16, 16), **change})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"normals": torch.zeros(2, 4, 3)}, r"normals has shape \(2, 4, 3\), expected \(2, 5, 3\)"),
        ({"uv": torch.zeros(5, 3)}, r"uv has shape \(5, 3\), expected \(5, 2\)"),
        ({"focal": torch.ones(1)}, r"focal has shape \(1,\), expected \(2,\)"),
        ({"principal_point": torch.zeros(2)}, r"principal_point has shape"),
        ({"faces": torch.zeros(4, 4, dtype=torch.int32)}, r"faces has shape \(4, 4\), expected \[F,3\]"),
        ({"sh": torch.zeros(3, 9, 3)}, r"sh has shape \(3, 9, 3\), expected \[2,bands²,3\]"),
        ({"diffuse": torch.zeros(3, 8, 8, 3)}, r"diffuse has shape \(3, 8, 8, 3\), expected \[1 or 2,T,T,3\]"),
        ({"roughness": torch.zeros(1, 8, 8, 3)}, r"roughness has shape .* expected \[1 or 2,T,T,1\]"),
    ],
)
def test_render_inputs_reject_bad_shapes(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _inputs(**change)


# --- LandmarkSet ----------------------------------------------------------------------------


def test_landmark_set_shapes_and_missing_names() -> None:
    found = torch.tensor([True, False])
    lms = LandmarkSet("ibug68", torch.zeros(2, 68, 2), torch.ones(2, 68), found, ["a.png", "b.png"])
    assert lms.missing == ["b.png"]
    with pytest.raises(ValueError, match=r"points has shape \(2, 68, 3\), expected \[2,L,2\]"):
        LandmarkSet("ibug68", torch.zeros(2, 68, 3), torch.ones(2, 68), found, ["a", "b"])
    with pytest.raises(ValueError, match=r"points has shape \(2, 68, 2\), expected \[3,L,2\]"):
        LandmarkSet("ibug68", torch.zeros(2, 68, 2), torch.ones(2, 68), found, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"confidence has shape \(2, 67\), expected \(2, 68\)"):
        LandmarkSet("ibug68", torch.zeros(2, 68, 2), torch.ones(2, 67), found, ["a", "b"])
    with pytest.raises(ValueError, match=r"found has shape \(1,\), expected \[2\]"):
        LandmarkSet("ibug68", torch.zeros(2, 68, 2), torch.ones(2, 68), found[:1], ["a", "b"])
