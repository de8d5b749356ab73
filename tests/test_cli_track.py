"""``nextface track`` end to end, in process: a synthetic clip encoded as H.264, the small
synthetic model written in the Basel file layouts (``--model basel --model-path``), and
landmark files through ``--landmarks file`` (MediaPipe does not find synthetic faces
reliably). Identity from keyframes, and from a ``nextface fit`` result folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nextface_cli.main as cli
from nextface_core.camera import axis_angle_to_matrix
from nextface_core.config import load_config
from nextface_core.landmark_files import write_landmarks
from nextface_core.plugins import PluginRegistry
from nextface_core.synthetic import synthetic_model
from nextface_model_basel.testing import write_synthetic_basel
from nextface_core.tracking import read_frames, video_writer
from nextface_core.synthetic.clip import synthetic_clip

SIZE = 96
CONFIG = """
[run]
device = "cpu"
[light]
bands = 3
[stage1]
iterations = 200
[stage2]
iterations = 30
[track]
resolution = 96
"""


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["nextface", *args])
    monkeypatch.setitem(cli.state, "debug", False)
    with pytest.raises(SystemExit) as info:
        cli.main()
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """clip.mp4 (8 frames, frame 3 without a face), its landmark file, the model folder, a config."""
    root = tmp_path_factory.mktemp("track")
    config = load_config(overrides={"run.device": "cpu", "light.bands": 3})
    model = synthetic_model("small")
    renderer = PluginRegistry().create("renderer", "vertex", config)
    clip = synthetic_clip(model, renderer, config, count=8, size=SIZE, faceless=(3,))
    with video_writer(root / "clip.mp4", (SIZE, SIZE), 25.0) as write:
        for frame in clip.frames:
            write(frame)
    write_landmarks(root / "landmarks.json", clip.landmarks)
    write_synthetic_basel(root / "model", "small")
    (root / "fast.toml").write_text(CONFIG)
    Image.fromarray(clip.frames[0]).save(root / "frame000000.png")
    return {"root": root, "clip": clip}


def _common(files: dict) -> list[str]:
    root = files["root"]
    return ["--landmarks", "file", "--landmarks-file", str(root / "landmarks.json"), "--model", "basel",
            "--model-path", str(root / "model"), "--config", str(root / "fast.toml")]


def _rotation_errors(a: np.ndarray, b: torch.Tensor) -> np.ndarray:
    r = axis_angle_to_matrix(torch.from_numpy(a).double()) @ axis_angle_to_matrix(b.double()).transpose(-1, -2)
    return np.degrees(np.arccos(np.clip((np.trace(r.numpy(), axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)))


def test_track_with_keyframe_identity_writes_every_output(clip_files, monkeypatch, capsys) -> None:
    """Identity from 2 keyframes (a quick shared-identity fit), then tracking. The fitted
    identity is not the true one (a quick fit at 96 px), so the pose carries an offset
    (within 5°) and the motion relative to frame 0 is off by up to ~9 % of its size
    (within 2.5° of the true one in every frame; the head turns by up to 22°). The face-less frame
    is interpolated; all outputs are written."""
    out = clip_files["root"] / "keyframes"
    code, stdout, stderr = _run(monkeypatch, capsys, "track", str(clip_files["root"] / "clip.mp4"), "-o", str(out),
                                "--keyframes", "2", "--obj", *_common(clip_files))
    assert code == 0, stderr
    assert "8 frames: 7 tracked, 1 interpolated, 0 without a face" in stdout
    summary = json.loads((out / "track.json").read_text())
    assert summary["counts"] == {"tracked": 7, "interpolated": 1, "no face": 0}
    assert summary["frames_without_face"] == [3] and summary["interpolated_frames"] == [3]
    assert len(summary["keyframes"]) == 2 and 3 not in summary["keyframes"]
    assert summary["fps"] == pytest.approx(25.0) and summary["model"].startswith("basel")
    with np.load(out / "track.npz", allow_pickle=False) as data:
        rotation, status = data["rotation"], data["status"]
    truth = clip_files["clip"].truth.rotation
    errors = _rotation_errors(rotation, truth)
    assert errors.max() < 5.0, errors
    motion = axis_angle_to_matrix(torch.from_numpy(rotation).double())
    motion = motion @ motion[:1].transpose(-1, -2)
    true_motion = axis_angle_to_matrix(truth.double()) @ axis_angle_to_matrix(truth[:1].double()).transpose(-1, -2)
    cos = ((motion @ true_motion.transpose(-1, -2)).diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    relative = torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))
    assert float(relative.max()) < 2.5, relative
    assert status.tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert len(list((out / "obj").glob("*.obj"))) == 8
    frame0 = (out / "obj" / "frame000000.obj").read_text()
    assert "metres" in frame0.splitlines()[0] and (out / "track.glb").is_file() and (out / "report.html").is_file()
    assert len(list(read_frames(out / "overlay.mp4"))) == 8
    assert (out / "pose.csv").read_text().splitlines()[4].split(",")[2] == "interpolated"


def test_track_reuses_the_identity_of_a_fit_result(clip_files, monkeypatch, capsys) -> None:
    """`nextface fit` on frame 0, then `nextface track --identity` on its image folder: no
    keyframe fit, and the track starts at the fit's pose (within 1°), within 5° of the truth."""
    root = clip_files["root"]
    fit_out = root / "fit"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the fit of a 96 px image: one thread is faster on a busy machine
    try:
        code, _, stderr = _run(monkeypatch, capsys, "fit", str(root / "frame000000.png"), "-o", str(fit_out),
                               "--skip-stage", "3", *_common(clip_files))
    finally:
        torch.set_num_threads(threads)
    assert code == 0, stderr
    out = root / "with-identity"
    code, stdout, stderr = _run(monkeypatch, capsys, "track", str(root / "clip.mp4"), "-o", str(out), "--no-overlay",
                                "--identity", str(fit_out), *_common(clip_files))
    assert code == 0, stderr
    summary = json.loads((out / "track.json").read_text())
    assert summary["identity"] == str(fit_out / "frame000000") and summary["keyframes"] == []
    assert not (out / "overlay.mp4").exists()
    with np.load(fit_out / "frame000000" / "params.npz", allow_pickle=False) as fit, \
            np.load(out / "track.npz", allow_pickle=False) as track:
        np.testing.assert_allclose(track["identity_shape"], fit["shape"], atol=1e-6)
        assert _rotation_errors(track["rotation"][:1], torch.from_numpy(fit["rotation"])[None])[0] < 1.0
        errors = _rotation_errors(track["rotation"], clip_files["clip"].truth.rotation)
    assert errors.max() < 5.0, errors


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00AVI garbage" * 50])
def test_a_corrupt_video_is_one_line_and_exit_3(tmp_path: Path, monkeypatch, capsys, content: bytes) -> None:
    video = tmp_path / "broken.avi"
    video.write_bytes(content)
    code, _, stderr = _run(monkeypatch, capsys, "track", str(video), "-o", str(tmp_path / "out"))
    assert code == 3
    lines = stderr.strip().splitlines()
    assert lines[0].startswith(f"error: video {video} cannot be decoded")
    assert lines[1].startswith("fix: pass a video file ffmpeg reads")
    assert not (tmp_path / "out").exists()


def test_an_identity_folder_without_a_fit_is_exit_3(clip_files, tmp_path: Path, monkeypatch, capsys) -> None:
    code, _, stderr = _run(monkeypatch, capsys, "track", str(clip_files["root"] / "clip.mp4"), "-o", str(tmp_path / "o"),
                           "--identity", str(tmp_path))
    assert code == 3
    assert stderr.startswith(f"error: {tmp_path} holds no params.npz")
