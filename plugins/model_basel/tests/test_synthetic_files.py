"""The synthetic face written in the Basel file layouts (:mod:`nextface_model_basel.testing`):
the files hold the in-memory model, laid out as the real sfm-as-bfm folder."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from nextface_core.color import srgb_to_linear
from nextface_core.model import MorphableModel
from nextface_core.synthetic import synthetic_model
from nextface_model_basel.testing import SyntheticBaselFiles, write_synthetic_basel

SFM_FOLDER = Path(__file__).resolve().parents[4] / "shared" / "models" / "sfm-as-bfm"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> SyntheticBaselFiles:
    return write_synthetic_basel(tmp_path_factory.mktemp("synthetic"), "small", seed=0)


def _landmark_vertices(model: MorphableModel) -> dict[int, int]:
    assoc = model.landmarks["ibug68"]
    return dict(zip(assoc.landmark_index.tolist(), assoc.vertex_index.tolist()))


def _layout(path: Path) -> dict[str, tuple[str, int, list[str]]]:
    """Every group and dataset of an HDF5 file: name → (dtype or "group", rank, attribute names)."""
    out: dict[str, tuple[str, int, list[str]]] = {}

    def visit(name: str, obj: h5py.Group | h5py.Dataset) -> None:
        kind = (str(obj.dtype), obj.ndim) if isinstance(obj, h5py.Dataset) else ("group", 0)
        out[name] = (*kind, sorted(obj.attrs))

    with h5py.File(path, "r") as h5:
        out["/"] = ("group", 0, sorted(h5.attrs))
        h5.visititems(visit)
    return out


def test_files_hold_the_same_model_as_memory(files: SyntheticBaselFiles) -> None:
    model = synthetic_model("small")
    n = model.n_vertices
    with h5py.File(files.model, "r") as h5, h5py.File(files.albedo, "r") as alb:
        assert np.array_equal(h5["shape/model/mean"][()].reshape(n, 3), model.shape_mean.numpy())
        assert np.array_equal(h5["shape/representer/points"][()].T, model.shape_mean.numpy())
        assert np.array_equal(h5["shape/representer/cells"][()].T.astype(np.int64), model.faces.numpy())
        basis = h5["expression/model/pcaBasis"][()]
        assert np.array_equal(basis.T.reshape(-1, n, 3), model.expression_basis.numpy())
        assert np.array_equal(alb["specularAlbedo/model/pcaVariance"][()], model.specular_var.numpy())
        # Basel's colour model is sRGB-like; the diffuse albedo is its linear version
        colour = torch.from_numpy(h5["color/model/mean"][()].astype(np.float64))
        diffuse = alb["diffuseAlbedo/model/mean"][()]
        assert np.allclose(srgb_to_linear(colour).numpy(), diffuse, atol=1e-6)
    table = [line.split("\t") for line in files.landmarks.read_text().splitlines() if not line.startswith("#")]
    assert {int(i): int(v) for i, v in table} == _landmark_vertices(model)
    chains = json.loads(files.contour.read_text())
    assert chains["right_contour"] == model.landmarks["ibug68"].contour[0].tolist()
    assert chains["left_contour"] == model.landmarks["ibug68"].contour[16].tolist()


@pytest.mark.skipif(not SFM_FOLDER.is_dir(), reason=f"the real sfm-as-bfm test model is not at {SFM_FOLDER}")
def test_file_layouts_match_the_sfm_as_bfm_folder(files: SyntheticBaselFiles) -> None:
    for ours in (files.model, files.albedo):
        assert _layout(ours) == _layout(SFM_FOLDER / ours.name), f"{ours.name} layout differs"
    ours_lines = files.landmarks.read_text().splitlines()
    theirs_lines = (SFM_FOLDER / files.landmarks.name).read_text().splitlines()
    assert ours_lines[0] == theirs_lines[0]  # the same header
    assert all(len(line.split("\t")) == 2 for line in ours_lines[1:])
    ours_json = json.loads(files.contour.read_text())
    theirs_json = json.loads((SFM_FOLDER / files.contour.name).read_text())
    assert sorted(ours_json) == sorted(theirs_json)
    with h5py.File(files.model, "r") as h5:
        n = h5["shape/representer/points"].shape[1]
        for group in ("shape", "expression", "color"):
            k = h5[f"{group}/model/pcaVariance"].shape[0]
            assert h5[f"{group}/model/mean"].shape == (3 * n,)
            assert h5[f"{group}/model/pcaBasis"].shape == (3 * n, k)
            assert h5[f"{group}/representer/cells"].shape[0] == 3
