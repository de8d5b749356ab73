"""Acceptance: ``nextface fit --model flame`` with the vertex renderer on an image rendered
from a synthetic FLAME-layout model with known parameters, landmarks from the ``file``
detector. Iterations are kept low so the test stays quick."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from PIL import Image
from typer.testing import CliRunner

from nextface_cli.main import app
from nextface_core.config import load_config
from nextface_core.synthetic import render_synthetic, synthetic_scene
from nextface_core.landmark_files import write_landmarks
from nextface_core.plugins import PluginRegistry
from nextface_model_flame.synthetic import write_synthetic_flame

SIZE = 128
CONFIG = """
[run]
device = "cpu"
[model]
shape_components = 30
expression_components = 15
[light]
bands = 3
[stage1]
iterations = 150
[stage2]
iterations = 5
[stage3]
iterations = 0
"""


def test_fit_model_flame_recovers_the_landmarks_of_a_synthetic_flame_image(tmp_path) -> None:
    pytest.importorskip("nextface_render_vertex")
    files = write_synthetic_flame(tmp_path / "flame")
    (tmp_path / "fit.toml").write_text(CONFIG)
    config = load_config(tmp_path / "fit.toml", {"model.path": str(files.folder)})
    registry = PluginRegistry(env={})
    model = registry.create("model", "flame", config)
    truth = synthetic_scene(model, image_size=SIZE, bands=3)
    image, sets = render_synthetic(model, truth, registry.create("renderer", "vertex", config), config, image_size=SIZE)
    Image.fromarray(image).save(tmp_path / "face.png")
    write_landmarks(tmp_path / "face.json", {"ibug68": replace(sets["ibug68"], names=["face"])}, {"face": (SIZE, SIZE)})

    result = CliRunner().invoke(
        app,
        ["fit", str(tmp_path / "face.png"), "-o", str(tmp_path / "out"), "--config", str(tmp_path / "fit.toml"),
         "--model", "flame", "--model-path", str(files.folder), "--renderer", "vertex",
         "--landmarks", "file", "--landmarks-file", str(tmp_path / "face.json")],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    row = summary["images"][0]
    assert row["landmark_error_px"] < 1.5  # 51 static landmarks, exact targets
    assert row["psnr_db"] > 20.0  # flat albedo + SH light through the vertex renderer
    assert (tmp_path / "out" / "face" / "mesh.obj").is_file()
