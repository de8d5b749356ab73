"""``nextface model info`` end to end, in a subprocess (as a user runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nextface_model_basel.testing import write_synthetic_basel


def _run(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEXTFACE_CACHE_DIR": str(cache), "NEXTFACE_PLUGINS": "model_basel"}
    code = "import sys; from nextface_cli.main import main; sys.argv = ['nextface'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_synthetic_basel(tmp_path_factory.mktemp("cli"), "small").folder


def test_model_info_json(folder: Path, tmp_path: Path) -> None:
    result = _run(["model", "info", "--model", "basel", "--path", str(folder), "--json", "--cold"], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["vertices"], report["triangles"]) == (532, 968)
    assert report["components"] == {"shape": 30, "expression": 15, "albedo": 20}
    assert report["units"] == "mm" and report["axes"].startswith("x left-right")
    assert report["uv"]["flipped"] == 0 and report["uv"]["area_distortion"] < 0.5
    assert report["landmark_schemas"]["ibug68"]["contour"] == 16
    assert report["load_seconds"]["first_is_cold"] is True
    # the --cold run used a temporary cache: the user's cache folder stays empty
    assert not (tmp_path / "basel").exists()


def test_model_info_text(folder: Path, tmp_path: Path) -> None:
    result = _run(["model", "info", "--path", str(folder)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "532 vertices, 968 triangles" in result.stdout
    assert "0 flipped triangles" in result.stdout
    assert "ibug68 (" in result.stdout


def test_missing_model_is_one_error_line_without_traceback(tmp_path: Path) -> None:
    result = _run(["model", "info", "--path", str(tmp_path)], tmp_path / "cache")
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: Basel Face Model 2017 file model2017-1_face12_nomouth.h5")
    assert "https://faces.dmi.unibas.ch/bfm/bfm2017.html" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def _calibrate(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    """``nextface model calibrate-landmarks`` with every installed plugin (it renders and detects)."""
    env = {**os.environ, "NEXTFACE_CACHE_DIR": str(cache)}
    env.pop("NEXTFACE_PLUGINS", None)
    code = "import sys; from nextface_cli.main import main; sys.argv = ['nextface'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, "model", "calibrate-landmarks", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_calibrate_landmarks_beside_the_model_files(folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    pytest.importorskip("skimage")
    from nextface_core import dense_landmarks
    from nextface_model_basel.loader import load_basel

    result = _calibrate(["--model", "basel", "--path", str(folder), "--views", "8", "--size", "192", "--beside", "--json"],
                        tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["renders"] == 8 and report["faces_detected"] >= 6
    assert report["fixed"] >= 350 and report["fixed"] + report["contour"] + report["left_out"] == 468
    assert report["written"] == str(folder / dense_landmarks.FILE_NAME)
    model, _ = load_basel(folder)
    found = dense_landmarks.find_calibration(model, beside=folder)
    assert found is not None and found.landmarks.numel() == report["fixed"]


def test_calibrate_landmarks_bad_inputs_are_one_error_each(folder: Path, tmp_path: Path) -> None:
    beside = _calibrate(["--model", "basel", "--beside"], tmp_path / "cache")
    assert beside.returncode != 0 and "--beside needs the model folder" in beside.stderr
    assert "pass --path DIR" in beside.stderr and "Traceback" not in beside.stderr
    photo = _calibrate(["--model", "basel", "--path", str(folder), "--photo", str(tmp_path / "none.png")], tmp_path / "cache")
    assert photo.returncode != 0 and "none.png" in photo.stderr and "Traceback" not in photo.stderr
    views = _calibrate(["--model", "basel", "--path", str(folder), "--views", "2"], tmp_path / "cache")
    assert views.returncode == 2 and "--views" in views.stderr
