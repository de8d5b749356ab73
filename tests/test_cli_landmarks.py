"""``nextface landmarks`` end to end with the real MediaPipe detector and the file detector."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from nextface_cli.main import main
from nextface_core.landmark_files import read_landmark_file, read_landmarks

pytest.importorskip("nextface_landmarks_mediapipe")


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """Run the console entry point; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["nextface", "landmarks", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(data.coffee()).save(folder / "coffee.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_writes_a_file_that_the_file_detector_reads_back(monkeypatch, capsys, photos: Path, tmp_path: Path) -> None:
    code, out, err = run(
        monkeypatch, capsys, photos / "astronaut.png", "--landmarks", "mediapipe", "-o", tmp_path / "a.json", "--overlay", tmp_path / "a.png"
    )
    assert code == 0, err
    assert "wrote landmarks (478 mediapipe478, 68 ibug68) of 1 image(s)" in out
    content = read_landmark_file(tmp_path / "a.json")
    assert content.sizes == {"astronaut.png": (512, 512)}
    first = content.sets["ibug68"]
    assert first.found.tolist() == [True] and first.names == ["astronaut.png"]
    overlay = np.asarray(Image.open(tmp_path / "a.png"))
    changed = np.any(overlay != data.astronaut(), axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 500 and 150 < xs.mean() < 300 and 50 < ys.mean() < 200  # dots on the face only

    code, out, err = run(
        monkeypatch, capsys, photos / "astronaut.png", "--landmarks", "file", "--landmarks-file", tmp_path / "a.json", "-o", tmp_path / "b.csv"
    )
    assert code == 0, err
    again = read_landmarks(tmp_path / "b.csv")
    for schema in ("ibug68", "mediapipe478"):
        assert torch.allclose(again[schema].points, content.sets[schema].points, atol=1e-3)


def test_a_face_less_image_stops_the_command_naming_it(monkeypatch, capsys, photos: Path, tmp_path: Path) -> None:
    code, _, err = run(monkeypatch, capsys, photos, "-o", tmp_path / "f.json")
    assert code == 3
    assert "no face found in " in err and "coffee.jpg" in err and "astronaut.png" not in err
    assert "--skip-no-face" in err
    assert not (tmp_path / "f.json").exists()


def test_skip_no_face_writes_the_others_and_one_overlay_each(monkeypatch, capsys, caplog, photos: Path, tmp_path: Path) -> None:
    code, out, err = run(monkeypatch, capsys, photos, "-o", tmp_path / "f.json", "--skip-no-face", "--overlay", tmp_path / "ov")
    assert code == 0, err
    assert "skipping 1 image(s) without a face: " in err and "coffee.jpg" in err
    assert "notes.txt" in caplog.text  # the non-image was flagged (logged) while listing the folder
    sets = read_landmarks(tmp_path / "f.json")
    assert sets["mediapipe478"].names == ["astronaut.png", "coffee.jpg"]
    assert sets["mediapipe478"].found.tolist() == [True, False]
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["astronaut_landmarks.png", "coffee_landmarks.png"]


def test_config_file_chooses_the_detector(monkeypatch, capsys, photos: Path, tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[run]\nlandmarks = "file"\n[landmarks]\nfile = "missing.csv"\n')
    code, _, err = run(monkeypatch, capsys, photos / "astronaut.png", "-o", tmp_path / "x.json", "--config", tmp_path / "c.toml")
    assert code == 3 and "landmark file missing.csv does not exist" in err


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["{photo}", "-o", "{tmp}/x.txt"], 2, "must end in .json or .csv"),
        (["{photo}", "-o", "{tmp}/x.json", "--overlay", "{tmp}/x.jpg"], 2, "must be a .png file"),
        (["{tmp}/none.png", "-o", "{tmp}/x.json"], 3, "none.png does not exist"),
        (["{photo}", "-o", "{tmp}/x.json", "--landmarks", "nosuch"], 2, "detector 'nosuch' is not installed"),
        (["{photo}", "-o", "{tmp}/x.json", "--landmarks", "file"], 2, "needs a landmark file"),
    ],
)
def test_usage_and_input_errors(monkeypatch, capsys, photos: Path, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    filled = [a.format(photo=photos / "astronaut.png", tmp=tmp_path) for a in args]
    got, _, err = run(monkeypatch, capsys, *filled)
    assert got == code and message in err, err
