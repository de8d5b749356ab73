"""The fit's landmark overlay (issue 21, item 4): detections, the model's points as the fit
projects them, and the residual between them, in the fit's output and in ``nextface landmarks --fit``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nextface_core.overlay import CONTOUR_COLOUR, DETECTED_COLOUR, PROJECTED_COLOUR, fit_overlay

SFM = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "sfm-as-bfm"
GREY = np.full((60, 80, 3), 128, np.uint8)


def test_projected_points_are_drawn_over_the_detections_and_joined_to_them() -> None:
    detected = np.array([[10.5, 10.5], [40.5, 30.5], [70.5, 50.5]])
    projected = np.array([[20.5, 10.5], [40.5, 40.5], [60.5, 50.5]])
    out = fit_overlay(GREY, detected, projected, np.array([True, True, False]), np.array([False, True, False]))
    assert tuple(out[10, 20]) == PROJECTED_COLOUR  # a surface point
    assert tuple(out[40, 40]) == CONTOUR_COLOUR  # a jaw-contour point
    assert tuple(out[10, 10]) == DETECTED_COLOUR and tuple(out[30, 40]) == DETECTED_COLOUR
    assert tuple(out[10, 15]) == PROJECTED_COLOUR and tuple(out[35, 40]) == PROJECTED_COLOUR  # the residuals
    assert tuple(out[50, 60]) == (128, 128, 128) and tuple(out[50, 70]) == DETECTED_COLOUR  # weight 0: detection only
    assert np.all(GREY == 128)


@pytest.mark.skipif(not SFM.is_dir(), reason=f"real test model folder {SFM} is absent")
def test_landmarks_fit_overlay_shows_the_projected_model_points(tmp_path: Path, monkeypatch, capsys) -> None:
    pytest.importorskip("nextface_landmarks_mediapipe")
    from skimage import data

    from nextface_cli.main import main

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    (tmp_path / "c.toml").write_text(f'[run]\nmodel = "basel"\nmax_resolution = 256\n[model]\npath = "{SFM}"\n'
                                     "[stage1]\niterations = 100\n")
    monkeypatch.setenv("NEXTFACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "argv", ["nextface", "landmarks", str(tmp_path / "astronaut.png"), "-o", str(tmp_path / "a.json"),
                                      "--overlay", str(tmp_path / "a.png"), "--fit", "--config", str(tmp_path / "c.toml")])
    with pytest.raises(SystemExit) as done:
        main()
    assert not done.value.code, capsys.readouterr().err
    overlay = np.asarray(Image.open(tmp_path / "a.png"))
    assert overlay.shape == (512, 512, 3)  # drawn on the original photo, not the fit's 256 px
    red = np.all(overlay == PROJECTED_COLOUR, axis=2)
    green = np.all(overlay == DETECTED_COLOUR, axis=2)
    assert red.sum() > 100 and green.sum() > 100
    ys, xs = np.nonzero(red)
    gy, gx = np.nonzero(green)
    assert abs(xs.mean() - gx.mean()) < 5 and abs(ys.mean() - gy.mean()) < 5  # fitted points sit on the detections


def test_fit_without_overlay_is_a_usage_error(tmp_path: Path, monkeypatch, capsys) -> None:
    from nextface_cli.main import main

    monkeypatch.setattr(sys, "argv", ["nextface", "landmarks", str(tmp_path / "x.png"), "-o", str(tmp_path / "a.json"), "--fit"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 2 and "--overlay" in capsys.readouterr().err
