"""The Basel loader on synthetic files (nextface_model_basel.testing, small size) and on the real
sfm-as-bfm face in the Basel layouts (skipped with the reason when that folder is absent).
The full-size synthetic model is exercised by benchmarks/bench_model_basel.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from nextface_core.config import load_config
from nextface_core.errors import ConfigError, InputError
from nextface_core.plugins import PluginRegistry
from nextface_core.synthetic import synthetic_model
from nextface_model_basel.testing import write_synthetic_basel
from nextface_core.uvmap import uv_quality
import nextface_model_basel
from nextface_model_basel import load_basel
from nextface_model_basel.files import ALBEDO_URL, BFM_URL
from nextface_model_basel.landmarks import ibug68

SFM = Path(__file__).resolve().parents[4] / "shared" / "models" / "sfm-as-bfm"
MODEL = "model2017-1_face12_nomouth.h5"
ALBEDO = "albedoModel2020_face12_albedoPart.h5"


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory) -> Path:
    return write_synthetic_basel(tmp_path_factory.mktemp("synthetic"), "small").folder


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("NEXTFACE_CACHE_DIR", str(path))
    return path


def _copy(src: Path, dst: Path, names=(MODEL, ALBEDO)) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(src / name, dst / name)
    return dst


def _sfm() -> Path:
    if not (SFM / MODEL).is_file():
        pytest.skip(f"real sfm-as-bfm test model not found at {SFM}")
    return SFM


# -- content -------------------------------------------------------------------------------


def test_synthetic_bases_shapes_orthonormality_and_values(synthetic_dir: Path) -> None:
    model, info = load_basel(synthetic_dir)
    ref = synthetic_model("small")
    assert (model.n_vertices, model.n_faces) == (ref.n_vertices, ref.n_faces)
    assert (model.n_shape, model.n_expression, model.n_albedo) == (30, 15, 20)
    for basis in (model.shape_basis, model.expression_basis, model.diffuse_basis, model.specular_basis):
        flat = basis.reshape(basis.shape[0], -1).double()
        assert torch.allclose(flat @ flat.T, torch.eye(basis.shape[0], dtype=torch.float64), atol=1e-4)
    # [K,N,3] is column k of the (3N,K) file basis, per vertex
    with h5py.File(synthetic_dir / MODEL, "r") as h5:
        column = torch.from_numpy(h5["shape/model/pcaBasis"][:, 3]).reshape(-1, 3)
        var = torch.from_numpy(h5["shape/model/pcaVariance"][()])
        mean = torch.from_numpy(h5["shape/model/mean"][()] + h5["expression/model/mean"][()]).reshape(-1, 3)
    assert torch.equal(model.shape_basis[3], column)
    assert torch.allclose(model.shape_var, var)
    assert torch.allclose(model.shape_mean, mean)
    assert torch.allclose(model.diffuse_basis, ref.diffuse_basis, atol=1e-6)
    assert torch.equal(model.faces, ref.faces)
    assert info.meta["units_in_file"] == "mm" and info.meta["basis_storage"]["shape"] == "orthonormal"
    assert model.landmarks["ibug68"].landmark_index.tolist() == ref.landmarks["ibug68"].landmark_index.tolist()
    assert torch.equal(model.symmetry, ref.symmetry)


def test_synthetic_uv_and_symmetry(synthetic_dir: Path) -> None:
    model, info = load_basel(synthetic_dir)
    q = uv_quality(model.uv, model.shape_mean.double(), model.faces, model.symmetry)
    assert q.flipped == 0 and info.meta["uv"]["flipped"] == 0
    assert q.symmetry_error < 1e-6
    assert torch.allclose(model.uv[model.symmetry, 0], 1 - model.uv[:, 0], atol=1e-6)


def test_component_truncation_and_too_many(synthetic_dir: Path) -> None:
    model, _ = load_basel(synthetic_dir, n_shape=5, n_expression=3, n_albedo=2)
    assert (model.n_shape, model.n_expression, model.n_albedo) == (5, 3, 2)
    with pytest.raises(ConfigError, match="model.shape_components = 31 but the Basel model has 30"):
        load_basel(synthetic_dir, n_shape=31)


def test_registered_factory_reads_the_config(synthetic_dir: Path) -> None:
    registry = PluginRegistry(entry_points=False, builtin=False)
    registry.add("model_basel", nextface_model_basel)
    config = load_config(None, {"model.path": str(synthetic_dir), "model.shape_components": 7, "run.device": "cpu"})
    model = registry.create("model", "basel", config)
    assert model.n_shape == 7 and model.n_expression == 15 and model.dtype == torch.float32


# -- cache ---------------------------------------------------------------------------------


def test_second_load_uses_the_cache_without_opening_hdf5(synthetic_dir: Path, monkeypatch) -> None:
    first, info1 = load_basel(synthetic_dir)
    assert not info1.cache_hit

    def refuse(*args, **kwargs):
        raise AssertionError("h5py.File was opened on a warm load")

    monkeypatch.setattr(h5py, "File", refuse)
    second, info2 = load_basel(synthetic_dir)
    assert info2.cache_hit and info2.cache_path == info1.cache_path
    assert torch.equal(first.shape_basis, second.shape_basis) and torch.equal(first.uv, second.uv)
    second.shape_basis.add_(1.0)  # copy-on-write map: writing must not touch the cache file
    third, _ = load_basel(synthetic_dir)
    assert torch.equal(third.shape_basis, first.shape_basis)


def test_modified_file_invalidates_the_cache(synthetic_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synthetic_dir, tmp_path / "model")
    _, info1 = load_basel(folder)
    with h5py.File(folder / ALBEDO, "r+") as h5:
        h5["diffuseAlbedo/model/pcaVariance"][0] = 0.5
    model, info2 = load_basel(folder)
    assert not info2.cache_hit and info2.cache_path != info1.cache_path
    assert float(model.diffuse_var[0]) == 0.5


# -- units, layouts and errors ---------------------------------------------------------------


def _rewrite(path: Path, name: str, value: np.ndarray) -> None:
    with h5py.File(path, "r+") as h5:
        del h5[name]
        h5[name] = value


def test_metres_are_detected_and_converted(synthetic_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synthetic_dir, tmp_path / "m")
    with h5py.File(folder / MODEL, "r") as h5:
        data = {f"{g}/{d}": h5[f"{g}/{d}"][()] for g in ("shape", "expression") for d in ("model/mean", "model/pcaVariance", "representer/points")}
    for name, value in data.items():
        _rewrite(folder / MODEL, name, value * (1e-6 if name.endswith("Variance") else 1e-3))
    model, info = load_basel(folder)
    ref, _ = load_basel(synthetic_dir)
    assert info.meta["units_in_file"] == "m" and info.meta["scale_to_mm"] == 1000.0
    assert torch.allclose(model.shape_mean, ref.shape_mean, atol=1e-3)
    assert torch.allclose(model.shape_var, ref.shape_var, rtol=1e-4)


def test_scaled_basis_is_normalised(synthetic_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synthetic_dir, tmp_path / "scaled")
    with h5py.File(folder / MODEL, "r") as h5:
        basis, var = h5["expression/model/pcaBasis"][()], h5["expression/model/pcaVariance"][()]
    _rewrite(folder / MODEL, "expression/model/pcaBasis", basis * np.sqrt(var)[None, :])
    model, info = load_basel(folder)
    ref, _ = load_basel(synthetic_dir)
    assert info.meta["basis_storage"]["expression"] == "scaled by sqrt(variance)"
    assert torch.allclose(model.expression_basis, ref.expression_basis, atol=1e-5)


def test_missing_folder_and_files_name_the_file_and_the_download(synthetic_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as exc:
        load_basel(tmp_path / "nowhere")
    assert BFM_URL in exc.value.hint and ALBEDO_URL in exc.value.hint
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=f"{MODEL} or model2017-1_bfm_nomouth.h5 not found in {empty}") as exc:
        load_basel(empty)
    assert BFM_URL in exc.value.hint
    only_bfm = _copy(synthetic_dir, tmp_path / "only", names=(MODEL,))
    with pytest.raises(InputError, match=f"AlbedoMM file {ALBEDO} not found in {only_bfm}") as exc:
        load_basel(only_bfm)
    assert ALBEDO_URL in exc.value.hint


def test_truncated_and_corrupt_files(synthetic_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synthetic_dir, tmp_path / "trunc")
    data = (folder / MODEL).read_bytes()
    (folder / MODEL).write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as exc:
        load_basel(folder)
    assert BFM_URL in exc.value.hint
    (folder / MODEL).write_bytes(b"not an hdf5 file at all" * 100)
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        load_basel(folder)


def test_wrong_layouts_name_the_dataset_and_shape(synthetic_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synthetic_dir, tmp_path / "layout")
    with h5py.File(folder / MODEL, "r") as h5:
        var = h5["shape/model/pcaVariance"][()]
        basis = h5["shape/model/pcaBasis"][()]
    _rewrite(folder / MODEL, "shape/model/pcaVariance", var[:-1])
    with pytest.raises(InputError, match=r"'shape/model/pcaVariance' has shape \(29,\), expected \(K,\) = \(30,\)"):
        load_basel(folder)
    _rewrite(folder / MODEL, "shape/model/pcaVariance", var)
    _rewrite(folder / MODEL, "shape/model/pcaBasis", basis.T.copy())
    with pytest.raises(InputError, match=r"'shape/model/pcaBasis' has shape \(30, 1596\), expected \(3N, K\)"):
        load_basel(folder)
    skewed = basis.copy()
    skewed[:, 1] += 0.5 * skewed[:, 0]
    _rewrite(folder / MODEL, "shape/model/pcaBasis", skewed)
    with pytest.raises(InputError, match="not orthogonal"):
        load_basel(folder)
    _rewrite(folder / MODEL, "shape/model/pcaBasis", basis)
    with h5py.File(folder / MODEL, "r+") as h5:
        del h5["expression/model/mean"]
    with pytest.raises(InputError, match="dataset 'expression/model/mean' is missing"):
        load_basel(folder)


def test_albedo_on_another_mesh_is_rejected(synthetic_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synthetic_dir, tmp_path / "mix", names=(MODEL,))
    sfm = _sfm()
    shutil.copy(sfm / ALBEDO, folder / ALBEDO)
    with pytest.raises(InputError, match="has 3448 vertices / 6736 triangles, but .* has 532 / 968"):
        load_basel(folder)


# -- landmarks -----------------------------------------------------------------------------


def test_unknown_topology_without_landmark_file_has_no_ibug68(synthetic_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synthetic_dir, tmp_path / "nolm")
    model, info = load_basel(folder)
    assert "ibug68" not in model.landmarks
    assert "not a known BFM 2017 topology" in info.landmark_source["ibug68"]


def test_landmark_file_errors(synthetic_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synthetic_dir, tmp_path / "badlm")
    (folder / "landmarks_ibug68.txt").write_text("30\t99999\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"landmarks_ibug68.txt:1: landmark 30 / vertex 99999 out of range"):
        load_basel(folder)
    (folder / "landmarks_ibug68.txt").write_text("30 nose\n", encoding="utf-8")
    with pytest.raises(InputError, match="expected 'ibug index <TAB> vertex index'"):
        load_basel(folder)


# -- the real face -------------------------------------------------------------------------


def test_real_face_facts() -> None:
    model, info = load_basel(_sfm())
    assert (model.n_vertices, model.n_faces, model.n_shape, model.n_expression) == (3448, 6736, 63, 6)
    assert info.meta["units_in_file"] == "mm" and info.meta["axes"].startswith("x left-right")
    mean = model.shape_mean
    # README: vertex 114 is the nose tip (within 1 mm of the most forward point), right eye at -x
    assert float(mean[:, 2].max() - mean[114, 2]) < 1.0
    assert float(mean[177, 0]) < 0 < float(mean[610, 0])
    assert info.meta["uv"]["flipped"] == 0
    lm = model.landmarks["ibug68"]
    assert dict(zip(lm.landmark_index.tolist(), lm.vertex_index.tolist()))[30] == 114
    assert sorted(lm.contour) == [*range(8), *range(9, 17)]
    for flat in (model.shape_basis, model.expression_basis):
        flat = flat.reshape(flat.shape[0], -1).double()
        assert torch.allclose(flat @ flat.T, torch.eye(flat.shape[0], dtype=torch.float64), atol=1e-4)


def test_real_face_computed_contour_matches_the_published_one(tmp_path: Path) -> None:
    sfm = _sfm()
    folder = tmp_path / "sfm"
    folder.mkdir()
    for name in (MODEL, ALBEDO, "landmarks_ibug68.txt"):
        os.symlink(sfm / name, folder / name)
    model, info = load_basel(folder)
    assert "computed from the mean shape" in info.landmark_source["ibug68"]
    published = __import__("json").loads((sfm / "contour_vertices.json").read_text())
    mean = model.shape_mean
    contour = model.landmarks["ibug68"].contour
    for side, landmark, sign in (("right_contour", 3, -1.0), ("left_contour", 13, 1.0)):
        computed = contour[landmark]
        assert bool((sign * mean[computed, 0] > 0).all())
        # every published candidate lies within 12 mm of a computed one
        d = torch.cdist(mean[torch.tensor(published[side])], mean[computed]).min(1).values
        assert float(d.max()) < 12.0, float(d.max())


def test_published_face12_indices_are_checked_against_the_mean() -> None:
    # a mean with the real face12 counts whose geometry does not fit the published indices
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(28588, 3))
    faces = np.zeros((56572, 3), dtype=np.int64)
    association, reason = ibug68(Path("/nonexistent"), mean, faces)
    assert association is None and "not a known" in reason
    # the same counts with the published nose tip in front and eyes on their sides are accepted
    mean[:, 2] = -10.0
    mean[8157, 2] = 50.0
    mean[2602, 0], mean[13481, 0] = -30.0, 30.0
    association, reason = ibug68(Path("/nonexistent"), mean, faces)
    assert association is not None and "abdallahdib/NextFace" in reason
    fixed = dict(zip(association.landmark_index.tolist(), association.vertex_index.tolist()))
    assert fixed[30] == 8157 and fixed[8] == 27061 and 0 not in fixed and len(association.contour) == 16


def test_symmetry_file_takes_precedence_and_keys_the_cache(synthetic_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synthetic_dir, tmp_path / "sym")
    computed, info1 = load_basel(folder)
    assert info1.meta["symmetry_source"].startswith("computed")
    (folder / "symmetry.txt").write_text("# mirror of each vertex\n" + "\n".join(map(str, computed.symmetry.tolist())) + "\n")
    model, info2 = load_basel(folder)
    assert not info2.cache_hit and info2.meta["symmetry_source"] == "model folder: symmetry.txt"
    assert torch.equal(model.symmetry, computed.symmetry)
    (folder / "symmetry.txt").write_text("0\n1\n")
    with pytest.raises(InputError, match="symmetry.txt: expected 532 lines"):
        load_basel(folder)


def test_full_size_synthetic_model(tmp_path: Path, monkeypatch) -> None:
    """The real BFM sizes end to end (about 15 s: writing 265 MB, a cold and a warm load)."""
    folder = write_synthetic_basel(tmp_path / "full", "full").folder
    model, info = load_basel(folder)
    assert (model.n_vertices, model.n_faces) == (28588, 56572)
    assert (model.n_shape, model.n_expression, model.n_albedo) == (199, 100, 145)
    flat = model.shape_basis.reshape(199, -1).double()
    assert torch.allclose(flat @ flat.T, torch.eye(199, dtype=torch.float64), atol=1e-4)
    assert info.meta["uv"]["flipped"] == 0 and info.meta["uv"]["symmetry_error"] < 1e-6
    monkeypatch.setattr(h5py, "File", None)  # a warm load must not touch h5py at all
    warm, info2 = load_basel(folder, n_shape=80)
    assert info2.cache_hit and warm.n_shape == 80
    assert torch.equal(warm.uv, model.uv)
    del model, warm
    shutil.rmtree(folder)  # 265 MB; pytest keeps old tmp folders


def test_damaged_cache_entry_is_rebuilt(synthetic_dir: Path) -> None:
    first, info = load_basel(synthetic_dir)
    (info.cache_path / "uv.npy").unlink()
    data = (info.cache_path / "shape_basis.npy").read_bytes()
    second, info2 = load_basel(synthetic_dir)
    assert not info2.cache_hit and torch.equal(second.uv, first.uv)
    (info.cache_path / "shape_basis.npy").write_bytes(data[: len(data) // 3])
    third, info3 = load_basel(synthetic_dir)
    assert not info3.cache_hit and torch.equal(third.shape_basis, first.shape_basis)


def test_albedo_triangles_may_be_listed_in_another_order(synthetic_dir: Path, tmp_path: Path) -> None:
    folder = _copy(synthetic_dir, tmp_path / "order")
    with h5py.File(folder / ALBEDO, "r") as h5:
        cells = h5["diffuseAlbedo/representer/cells"][()]
    _rewrite(folder / ALBEDO, "diffuseAlbedo/representer/cells", cells[:, ::-1].copy())
    model, _ = load_basel(folder)
    assert model.n_faces == cells.shape[1]
    other = cells.copy()
    other[:, 0] = other[:, 1]  # a different triangle
    _rewrite(folder / ALBEDO, "diffuseAlbedo/representer/cells", other)
    with pytest.raises(InputError, match="same counts, different triangles"):
        load_basel(folder)
