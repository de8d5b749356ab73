"""Video tracking on synthetic clips with known trajectories (CPU, vertex renderer).

Frames are rendered from the small synthetic model; landmarks are the exact projections of
its landmark vertices, passed in directly as the ``file`` detector would serve them
(MediaPipe does not find these synthetic faces reliably). The identity is the true one
unless a test fits it. MediaPipe's tracking mode is checked on a real photo (astronaut)
moved across frames.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nextface_core.camera import axis_angle_to_matrix
from nextface_core.config import load_config
from nextface_core.errors import InputError
from nextface_core.plugins import PluginRegistry
from nextface_core.tracking import (
    INTERPOLATED, MISSING, TRACKED, Identity, keyframe_indices, probe, read_frames, save_track, track_frames, video_writer,
)
from nextface_core.tracking.outputs import euler_degrees
from nextface_core.synthetic.clip import synthetic_clip
from nextface_core.tracking.track import detect_frames

SIZE = 128
FAST = {"run.device": "cpu", "light.bands": 3, "track.resolution": SIZE}


@pytest.fixture(scope="module")
def config():
    return load_config(overrides=FAST)


@pytest.fixture(scope="module")
def renderer(registry, config):
    return registry.create("renderer", "vertex", config)


def rotation_errors(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Angle of ``R(a) R(b)ᵀ`` per row, degrees."""
    r = axis_angle_to_matrix(a.double()) @ axis_angle_to_matrix(b.double()).transpose(-1, -2)
    cos = ((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos)).numpy()


def _track(clip, config, registry, model, renderer, landmarks=None, frames=None):
    frames = clip.frames if frames is None else frames
    return track_frames(lambda: iter(frames), config, registry=registry, model=model, renderer=renderer,
                        identity=clip.identity, landmarks=landmarks or clip.landmarks)


def test_a_turning_head_with_a_changing_expression_is_tracked(config, registry, model, renderer) -> None:
    """Yaw −15° → +10° over 12 frames, a ±6° nod, the expression fading out and back reversed:
    every frame within 2° rotation and 0.5 standard deviations per expression coefficient
    (the expression's own size is ~0.5 sd per coefficient, up to 1.2)."""
    clip = synthetic_clip(model, renderer, config, count=12, size=SIZE)
    result = _track(clip, config, registry, model, renderer)
    assert result.counts() == {"tracked": 12, "interpolated": 0, "no face": 0}
    errors = rotation_errors(result.rotation, clip.truth.rotation)
    assert errors.max() < 2.0, errors
    expression_error = (result.expression - clip.truth.expression).abs().amax(1)
    assert float(expression_error.max()) < 0.5, expression_error
    assert float(clip.truth.expression.abs().max()) > 1.0  # the bound is well below the signal
    assert np.nanmax(result.landmark_error_px) < 1.0
    depth_error = (result.translation[:, 2] - clip.truth.translation[:, 2]).abs().max()
    assert float(depth_error) < 0.02 * float(clip.truth.translation[0, 2])


def test_a_still_head_with_noisy_landmarks_does_not_jitter(config, registry, model, renderer) -> None:
    """Landmarks with 0.3 px Gaussian noise on a still head (face ~70 px wide): frame-to-frame
    rotation change below 0.6° and translation change below 1 mm; without the smoothness
    terms the same noise moves the head at least twice as much."""
    clip = synthetic_clip(model, renderer, config, count=10, size=SIZE, moving=False)
    ls = clip.landmarks["ibug68"]
    noise = torch.randn(ls.points.shape, generator=torch.Generator().manual_seed(0), dtype=ls.points.dtype) * 0.3
    noisy = {"ibug68": replace(ls, points=ls.points + noise)}
    fast = config.with_overrides({"track.photometric_iterations": 0})
    smooth = _track(clip, fast, registry, model, renderer, landmarks=noisy)
    rough = _track(clip, fast.with_overrides({"track.smooth_rotation": 0.0, "track.smooth_translation": 0.0,
                                              "track.smooth_expression": 0.0}), registry, model, renderer, landmarks=noisy)
    step = rotation_errors(smooth.rotation[1:], smooth.rotation[:-1])
    rough_step = rotation_errors(rough.rotation[1:], rough.rotation[:-1])
    moved = (smooth.translation[1:] - smooth.translation[:-1]).norm(dim=-1)
    assert step.max() < 0.6, step
    assert float(moved.max()) < 1.0, moved
    assert rough_step.max() > 2.0 * step.max(), (rough_step, step)
    assert rotation_errors(smooth.rotation, clip.truth.rotation).max() < 2.0


def test_frames_without_a_face_are_marked_interpolated_or_held(config, registry, model, renderer, tmp_path: Path) -> None:
    """A 2-frame gap (≤ max_gap 2) is interpolated between its neighbours; a 3-frame gap at
    the end holds the last tracked pose; the run completes and the outputs mark them."""
    cfg = config.with_overrides({"track.max_gap": 2, "track.photometric_iterations": 1})
    clip = synthetic_clip(model, renderer, cfg, count=11, size=SIZE, faceless=(4, 5, 8, 9, 10))
    result = _track(clip, cfg, registry, model, renderer)
    assert result.status.tolist() == [TRACKED] * 4 + [INTERPOLATED] * 2 + [TRACKED] * 2 + [MISSING] * 3
    # the interpolated rotations lie on the path between frames 3 and 6, near the truth
    assert rotation_errors(result.rotation[4:6], clip.truth.rotation[4:6]).max() < 2.0
    yaw = euler_degrees(result.rotation)[:, 1]
    assert float(yaw[3]) < float(yaw[4]) < float(yaw[5]) < float(yaw[6])
    torch.testing.assert_close(result.rotation[8:], result.rotation[7:8].expand(3, 3), atol=1e-6, rtol=0)
    assert np.isnan(result.landmark_error_px[[4, 5, 8, 9, 10]]).all()

    save_track(result, lambda: iter(clip.frames), tmp_path, overlay=True, obj=True)
    with np.load(tmp_path / "track.npz", allow_pickle=False) as data:
        assert data["status"].tolist() == result.status.tolist()
        assert data["expression"].shape == (11, model.n_expression)
        np.testing.assert_allclose(data["rotation"], result.rotation.numpy(), atol=1e-6)
    rows = (tmp_path / "pose.csv").read_text().splitlines()
    assert rows[0].startswith("frame,time_s,status,rx,ry,rz,pitch_deg,yaw_deg,roll_deg,tx,ty,tz")
    assert [r.split(",")[2] for r in rows[1:]] == ["tracked"] * 4 + ["interpolated"] * 2 + ["tracked"] * 2 + ["no face"] * 3
    assert len((tmp_path / "expression.csv").read_text().splitlines()[0].split(",")) == 3 + model.n_expression
    assert len(list((tmp_path / "obj").glob("frame*.obj"))) == 11
    info = probe(tmp_path / "overlay.mp4")
    assert info.size == (2 * SIZE, SIZE)
    overlay = list(read_frames(tmp_path / "overlay.mp4"))
    assert len(overlay) == 11
    # a held frame has a red border, a tracked one none
    assert overlay[9][1, SIZE // 2, 0] > 200 and overlay[9][1, SIZE // 2, 1] < 60
    assert overlay[0][1, SIZE // 2].tolist() == pytest.approx(clip.frames[0][1, SIZE // 2].tolist(), abs=12)


def test_euler_angles_follow_the_stated_convention() -> None:
    """R = Rz(roll) Ry(yaw) Rx(pitch): a pure yaw of 20° reads (0, 20, 0), and the three
    angles rebuild the matrix."""
    yaw = euler_degrees(torch.tensor([[0.0, math.radians(20.0), 0.0]], dtype=torch.float64))
    np.testing.assert_allclose(yaw.numpy(), [[0.0, 20.0, 0.0]], atol=1e-9)
    rotation = torch.tensor([[0.2, -0.3, 0.1]], dtype=torch.float64)
    p, y, r = torch.deg2rad(euler_degrees(rotation))[0]
    rx = axis_angle_to_matrix(torch.stack([p, p * 0, p * 0]))
    ry = axis_angle_to_matrix(torch.stack([y * 0, y, y * 0]))
    rz = axis_angle_to_matrix(torch.stack([r * 0, r * 0, r]))
    np.testing.assert_allclose((rz @ ry @ rx).numpy(), axis_angle_to_matrix(rotation)[0].numpy(), atol=1e-12)


def test_keyframes_spread_over_the_frames_with_a_face() -> None:
    found = [False, True, True, False, True, True, True, False]
    assert keyframe_indices(found, 3) == [1, 4, 6]
    assert keyframe_indices(found, 10) == [1, 2, 4, 5, 6]
    assert keyframe_indices([False, False], 2) == []


def test_a_video_round_trip_keeps_frames_and_rate(tmp_path: Path) -> None:
    """An odd-sized clip is written (padded to even) and read back: 7 frames at 12 fps,
    mean difference below 3 grey levels (H.264 at quality 7)."""
    base = (np.linspace(0, 255, 33)[None, :, None] * np.ones((21, 1, 3))).astype(np.uint8)
    frames = [np.roll(base, 2 * i, axis=1) for i in range(7)]
    with video_writer(tmp_path / "clip.mp4", (33, 21), 12.0) as write:
        for f in frames:
            write(f)
    info = probe(tmp_path / "clip.mp4")
    assert info.size == (34, 22) and info.fps == pytest.approx(12.0)
    back = list(read_frames(tmp_path / "clip.mp4"))
    assert len(back) == 7
    assert np.abs(back[3][:21, :33].astype(int) - frames[3]).mean() < 3.0


@pytest.mark.parametrize(
    "content, name, problem",
    [
        (b"", "empty.mp4", "cannot be decoded"),
        (b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40, "corrupt.mp4", "cannot be decoded"),
        (b"frame,x,y\n1,2,3\n", "notes.csv", "cannot be decoded"),
    ],
)
def test_corrupt_or_unsupported_videos_are_input_errors(tmp_path: Path, content: bytes, name: str, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        probe(path)
    assert problem in err.value.message and str(path) in err.value.message
    assert "ffmpeg" in err.value.hint
    with pytest.raises(InputError):
        next(iter(read_frames(path)))


def test_a_missing_video_or_a_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(InputError, match="not a file"):
        probe(tmp_path)


def test_identity_folders_are_checked(tmp_path: Path, model) -> None:
    """A fit folder's params are read without pickle; wrong sizes and missing files are clear."""
    with pytest.raises(InputError, match="holds no params.npz"):
        Identity.load(tmp_path)
    folder = tmp_path / "face"
    folder.mkdir()
    arrays = {"shape": np.zeros(model.n_shape + 1), "diffuse": np.zeros(model.n_albedo), "specular": np.zeros(model.n_albedo),
              "focal": np.float32(300.0), "sh": np.zeros((9, 3))}
    np.savez(folder / "params.npz", **arrays)
    with pytest.raises(InputError, match="lacks params.json"):
        Identity.load(tmp_path)
    (folder / "params.json").write_text('{"image_size": [150, 200]}')
    identity = Identity.load(tmp_path)
    assert identity.focal_ratio == pytest.approx(1.5)
    assert float(identity.specular_log_scale) == 0.0  # a result written before the specular level: the model's
    np.savez(folder / "params.npz", **arrays, specular_log_scale=np.array([-0.25]))
    assert float(Identity.load(tmp_path).specular_log_scale) == pytest.approx(-0.25)
    assert float(Identity.load(tmp_path).parameters(2, identity.sh).specular_log_scale) == pytest.approx(-0.25)
    with pytest.raises(InputError, match=f"has {model.n_shape + 1} shape coefficients"):
        identity.check(model)
    (folder / "params.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="is damaged"):
        Identity.load(folder)


def test_mediapipe_tracks_a_moving_real_face() -> None:
    """MediaPipe in its tracking mode (static_image_mode=False) on the astronaut photo moved
    4 px right per frame: a face in every frame, its landmarks moving 4 ± 1 px per frame."""
    from skimage.data import astronaut

    registry = PluginRegistry()
    available = registry.resolve("detector", "mediapipe").availability()
    if not available.ok:
        pytest.skip(f"mediapipe cannot run here: {available.detail}")
    photo = astronaut()[:256, 64:320]
    frames = [np.roll(photo, 4 * i, axis=1) for i in range(5)]
    cfg = load_config(overrides={"run.landmarks": "mediapipe"})
    sets, names = detect_frames(lambda: iter(frames), cfg, registry)
    ls = sets["mediapipe478"]
    assert ls.found.all() and names[0] == "frame000000"
    shift = (ls.points[1:] - ls.points[:-1]).mean(1)  # [4,2]
    np.testing.assert_allclose(shift[:, 0].numpy(), 4.0, atol=1.0)
    np.testing.assert_allclose(shift[:, 1].numpy(), 0.0, atol=1.0)


def test_no_face_in_any_frame_is_an_input_error(config, registry, model, renderer) -> None:
    clip = synthetic_clip(model, renderer, config, count=2, size=64, faceless=(0, 1))
    with pytest.raises(InputError, match="no face found in any of the 2 frames"):
        _track(clip, config, registry, model, renderer)


def test_the_tracker_takes_video_mode_from_the_detector_contract() -> None:
    """detect_frames calls the detector's optional ``for_video()`` (a fake detector here) and
    runs the frames through what it returns, in order; it sets no plugin option itself."""
    from nextface_core import hookimpl
    from nextface_core.landmarks import LandmarkSet

    calls: list[str] = []

    class FakeDetector:
        name = "fake"

        def __init__(self, video: bool = False) -> None:
            self.video = video

        def for_video(self) -> "FakeDetector":
            calls.append("for_video")
            return FakeDetector(video=True)

        def detect(self, images, names):
            calls.append(f"detect video={self.video}")
            points = torch.full((len(images), 68, 2), float(len(calls)))
            return {"ibug68": LandmarkSet("ibug68", points, torch.ones(len(images), 68), torch.ones(len(images), dtype=torch.bool), list(names))}

    class Plugin:
        @hookimpl
        def nextface_register_landmark_detectors(self, register) -> None:
            register("fake", lambda config: FakeDetector())

    registry = PluginRegistry([("fake", Plugin())], entry_points=False, builtin=False, env={})
    frames = [np.zeros((8, 8, 3), np.uint8)] * 3
    sets, names = detect_frames(lambda: iter(frames), load_config(overrides={"run.landmarks": "fake"}), registry)
    assert calls == ["for_video", "detect video=True", "detect video=True", "detect video=True"]
    assert names == ["frame000000", "frame000001", "frame000002"] and sets["ibug68"].points.shape == (3, 68, 2)
