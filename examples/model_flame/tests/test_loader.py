"""Loading FLAME's file layout: a synthetic FLAME-layout file written by the test (the real
model needs a registration) against the core synthetic model it was made from."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from nextface_core.color import srgb_to_linear
from nextface_core.config import load_config
from nextface_core.errors import ConfigError, InputError
from nextface_core.plugins import PluginRegistry
from nextface_core.synthetic import synthetic_model
from nextface_core.testing.kit import check_plugin
from nextface_core.options import parse_options
from nextface_model_flame import FlameOptions, load_flame
from nextface_model_flame.synthetic import synthetic_flame_arrays, write_synthetic_flame

import nextface_model_flame


@pytest.fixture(scope="module")
def flame_dir(tmp_path_factory):
    return write_synthetic_flame(tmp_path_factory.mktemp("flame")).folder


@pytest.fixture(scope="module")
def source():
    return synthetic_model("small", dtype=torch.float64)


def test_geometry_is_converted_to_millimetres_with_flames_component_split(flame_dir, source) -> None:
    model = load_flame(flame_dir, dtype=torch.float64)
    assert model.name == "flame" and model.units == "mm"
    assert (model.n_shape, model.n_expression) == (300, 100)  # FLAME's split of shapedirs
    assert torch.allclose(model.shape_mean, source.shape_mean, atol=1e-9)  # metres × 1000
    k_s, k_e = source.n_shape, source.n_expression
    assert torch.allclose(model.shape_basis[:k_s], source.shape_basis * source.shape_var.sqrt()[:, None, None], atol=1e-9)
    assert torch.allclose(model.expression_basis[:k_e], source.expression_basis * source.expression_var.sqrt()[:, None, None], atol=1e-9)
    assert float(model.shape_basis[k_s:].abs().max()) == 0.0  # FLAME-layout padding of the small model
    assert torch.equal(model.shape_var, torch.ones(300, dtype=torch.float64))
    assert torch.equal(model.faces, source.faces)


def test_static_landmarks_take_the_heaviest_corner_as_ibug_17_to_67(flame_dir, source) -> None:
    model = load_flame(flame_dir)
    assoc = model.landmarks["ibug68"]
    assert assoc.landmark_index.tolist() == list(range(17, 68))
    expected = dict(zip(source.landmarks["ibug68"].landmark_index.tolist(), source.landmarks["ibug68"].vertex_index.tolist()))
    assert assoc.vertex_index.tolist() == [expected[i] for i in range(17, 68)]
    assert assoc.contour == {}  # no dynamic jaw contour


def test_a_deca_style_embedding_gives_all_68_landmarks(tmp_path, source) -> None:
    files = write_synthetic_flame(tmp_path)
    assoc = source.landmarks["ibug68"]
    fixed = dict(zip(assoc.landmark_index.tolist(), assoc.vertex_index.tolist()))
    vertex = [fixed[i] if i in fixed else int(assoc.contour[i][0]) for i in range(68)]  # jaw: first contour candidate
    faces = source.faces.numpy()
    face_idx = [int(np.flatnonzero((faces == v).any(1))[0]) for v in vertex]
    bary = np.array([(faces[f] == v).astype(float) * 0.8 + 0.1 for f, v in zip(face_idx, vertex)])
    np.save(tmp_path / "landmark_embedding.npy", {"full_lmk_faces_idx": np.array([face_idx]), "full_lmk_bary_coords": bary[None]})
    model = load_flame(files.folder, FlameOptions(landmark_file="landmark_embedding.npy"))
    assert model.landmarks["ibug68"].landmark_index.tolist() == list(range(68))
    assert model.landmarks["ibug68"].vertex_index.tolist() == vertex


def test_flat_albedo_symmetry_and_computed_uv(flame_dir, source) -> None:
    model = load_flame(flame_dir, FlameOptions(skin_color=(0.5, 0.4, 0.3)), dtype=torch.float64)
    skin = srgb_to_linear(torch.tensor([0.5, 0.4, 0.3], dtype=torch.float64))
    assert torch.allclose(model.diffuse_mean, skin.expand_as(model.diffuse_mean))
    assert model.n_albedo == 3 and torch.equal(model.diffuse_basis[1, :, 1], torch.ones(model.n_vertices, dtype=torch.float64))
    assert torch.equal(model.symmetry, source.symmetry)
    u_mirror = model.uv[model.symmetry, 0]
    assert float((u_mirror - (1.0 - model.uv[:, 0])).abs().max()) < 1e-6  # the core's symmetric UV
    assert float(model.uv.min()) >= 0.0 and float(model.uv.max()) <= 1.0


def test_uv_from_a_texture_file(tmp_path, source) -> None:
    files = write_synthetic_flame(tmp_path)
    vt = source.uv.numpy().copy()
    vt[:, 1] = 1.0 - vt[:, 1]  # OBJ-style: v from the bottom
    np.savez(tmp_path / "FLAME_texture.npz", vt=vt, ft=source.faces.numpy())
    model = load_flame(files.folder, FlameOptions(texture_file="FLAME_texture.npz"), dtype=torch.float64)
    assert torch.allclose(model.uv, source.uv, atol=1e-12)


def test_uv_from_an_obj_with_seams(tmp_path, source) -> None:
    files = write_synthetic_flame(tmp_path)
    uv, faces = source.uv.numpy(), source.faces.numpy()
    # a seam: triangle 0's first corner gets its own (duplicate) texture coordinate
    vt = np.concatenate([uv, uv[faces[0, :1]]])
    ft = faces.copy()
    ft[0, 0] = len(uv)
    lines = ["# template with separate texture indices"]
    lines += [f"v {x} {y} {z}" for x, y, z in source.shape_mean.numpy() / 1000.0]
    lines += [f"vt {u} {1.0 - v}" for u, v in vt]
    lines += [f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}" for (a, b, c), (ta, tb, tc) in zip(faces, ft)]
    (tmp_path / "head_template.obj").write_text("\n".join(lines) + "\n")
    model = load_flame(files.folder, FlameOptions(texture_file="head_template.obj"), dtype=torch.float64)
    assert torch.allclose(model.uv, source.uv, atol=1e-12)
    (tmp_path / "bad.obj").write_text("vt 0 0\nf 1 2 3\n")
    with pytest.raises(InputError, match="bad.obj line 2: faces must be triangles written v/vt"):
        load_flame(files.folder, FlameOptions(texture_file="bad.obj"))


def test_the_registered_model_passes_the_model_contract_with_component_caps(flame_dir) -> None:
    config = load_config(overrides={"model.path": str(flame_dir), "model.shape_components": 12, "model.expression_components": 5, "run.device": "cpu"})
    passed = check_plugin(nextface_model_flame, "model", "flame", config)
    assert "millimetres" in passed and "nose tip near x = 0 (+z out of the face)" in passed
    model = nextface_model_flame.create(config, FlameOptions())
    assert (model.n_shape, model.n_expression) == (12, 5)


def test_installed_distribution_registers_flame() -> None:
    registry = PluginRegistry(env={})
    assert "flame" in registry.names("model")
    info = next(p for p in registry.plugins() if p.name == "model_flame")
    assert info.distribution == "nextface-model-flame"


def test_missing_folder_and_files_name_the_fix(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist") as info:
        load_flame(tmp_path / "nowhere")
    assert "flame.is.tue.mpg.de" in info.value.hint
    files = write_synthetic_flame(tmp_path / "a")
    files.landmarks.unlink()
    with pytest.raises(InputError, match="landmark embedding .*flame_static_embedding.pkl does not exist"):
        load_flame(files.folder)


def test_a_file_without_shapedirs_or_with_too_few_columns_is_rejected(tmp_path) -> None:
    flame, _ = synthetic_flame_arrays()
    files = write_synthetic_flame(tmp_path / "a", model={k: v for k, v in flame.items() if k != "shapedirs"})
    with pytest.raises(InputError, match="has no 'shapedirs' entry"):
        load_flame(files.folder)
    files = write_synthetic_flame(tmp_path / "b", model={**flame, "shapedirs": flame["shapedirs"][..., :300]})
    with pytest.raises(InputError, match=r"'shapedirs' has shape \(532, 3, 300\)"):
        load_flame(files.folder)


def test_a_doctored_model_file_is_an_input_error_not_code(tmp_path) -> None:
    files = write_synthetic_flame(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:  # fake attacker object
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    files.model.write_bytes(pickle.dumps({"v_template": Payload()}, protocol=2))
    with pytest.raises(InputError, match=r"is not a plain FLAME model file: refusing to load [\w.]+\.system") as info:
        load_flame(files.folder)
    assert info.value.exit_code == 3 and not marker.exists()


@pytest.mark.parametrize(
    "table, message",
    [
        ({"colour": 1}, r"unknown key plugins\.model_flame\.colour"),
        ({"skin_color": [2, 0, 0]}, r"skin_color\[0\] = 2\.0 is out of range"),
        ({"skin_color": [0.5, 0.5]}, "skin_color must be a list of 3 values"),
        ({"model_file": 3}, "model_file must be a string"),
    ],
)
def test_bad_plugin_options_are_config_errors(table, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_options(FlameOptions, table, "model_flame")


def test_plugin_options_reach_the_loader() -> None:
    options = parse_options(FlameOptions, {"skin_color": [0.5, 0.4, 0.3], "texture_file": "t.npz"}, "model_flame")
    assert options == FlameOptions(texture_file="t.npz", skin_color=(0.5, 0.4, 0.3))
