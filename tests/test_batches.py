"""``nextface fit FOLDER`` in chunks of ``run.batch_size`` photos, run as a user runs it (a
subprocess of the real CLI) on the tiny synthetic dataset (64 px faces, the small synthetic
model in the Basel file layouts, exact landmarks through ``--landmarks file``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nextface_core.synthetic.dataset import write_synthetic_dataset
from nextface_model_basel.testing import write_synthetic_basel
from nextface_core.fitting.batches import _saved_metrics, chunks

CODE = "import sys; from nextface_cli.main import main; sys.argv = ['nextface'] + sys.argv[1:]; main()"
NAMES = ("face000", "face001", "face002")
#: batch vs alone: stage 1 solves each image on its own, so only stages 2–3 differ, where the
#: photometric term is normalised by the covered pixels of the whole batch (a photo's weight
#: against its landmark and prior terms changes by its share of them): sd units, radians, mm
TOLERANCE = {"shape": 0.05, "expression": 0.05, "rotation": 0.005, "translation": 1.0}


def nextface(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXTFACE_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("batches")
    ds = write_synthetic_dataset(root / "ds", "basel", write_synthetic_basel, count=len(NAMES), size=64)
    config = root / "chunked.toml"
    config.write_text(ds.config.read_text().replace("[run]\n", "[run]\nbatch_size = 2\n", 1))
    return root, ds, config


def _params(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "params.npz", allow_pickle=False) as p:
        return {k: p[k] for k in p.files}


def test_chunks_cover_every_item_once() -> None:
    assert [list(r) for r in chunks(5, 2)] == [[0, 1], [2, 3], [4]]
    assert [list(r) for r in chunks(2, 8)] == [[0, 1]]


def test_chunked_folder_fit_equals_one_by_one_fits(dataset) -> None:
    root, ds, config = dataset
    assert "batch_size = 2" in config.read_text()
    folder = nextface(["fit", str(ds.images), "-o", str(root / "folder"), "--config", str(config)], root / "cache")
    assert folder.returncode == 0, folder.stderr
    summary = json.loads((root / "folder" / "summary.json").read_text())
    assert [row["name"] for row in summary["images"]] == list(NAMES)
    assert [b["names"] for b in summary["batches"]] == [["face000", "face001"], ["face002"]]
    assert (root / "folder" / "batch01_loss_stage2.png").is_file() and (root / "folder" / "batch02_loss_stage2.png").is_file()
    # a resumed folder fit reports an image fitted before the interruption from its params.json:
    # every figure of the row, not only the first four (psnr_face_db, ibug68_error_*, the maps'
    # statistics were missing)
    for row in summary["images"]:
        assert _saved_metrics(root / "folder" / row["name"] / "params.json") == {k: v for k, v in row.items() if k != "name"}
    for name in NAMES:
        alone = nextface(["fit", str(ds.images / f"{name}.png"), "-o", str(root / name), "--config", str(config)], root / "cache")
        assert alone.returncode == 0, alone.stderr
        got, want = _params(root / "folder" / name), _params(root / name / name)
        if name == "face002":  # alone in its chunk: the same fit, so equal to 1e-5
            for key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5, err_msg=f"{name} {key}")
            continue
        for key, atol in TOLERANCE.items():
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=atol, err_msg=f"{name} {key}")
        np.testing.assert_allclose(got["focal"], want["focal"], rtol=0.005, err_msg=f"{name} focal")
