"""The ``fan`` detector's real code path, run on FAN and S3FD networks with test-made weights.

There is no network here, so the published weights cannot be fetched. Every test named
``fake_weights`` runs the plugin exactly as a user would, on weight files this module
writes where the plugin looks for them (torch hub's checkpoint folder under a temporary
``TORCH_HOME``, or the ``weights_dir`` option):

- FAN: ``FAN(4)`` with seeded random weights. Its landmarks are meaningless, so the tests
  compare the plugin with face-alignment's own ``FaceAlignment.get_landmarks_from_image``
  on the same box and weights, and check where the points can lie;
- S3FD: constructed weights (all zero, so every anchor sees the same constant) whose class
  biases make every anchor a face (the boxes are then the anchors themselves) or none.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from skimage import data

from nextface_core.config import load_config
from nextface_core.errors import BackendUnavailableError, ConfigError, InputError
from nextface_core.plugins import PluginRegistry
from nextface_landmarks_fan import check
from nextface_landmarks_fan.detector import FAN_FILE, FAN_URL, SFD_FILE, FanDetector

face_alignment = pytest.importorskip("face_alignment")
from face_alignment.detection.sfd.net_s3fd import s3fd  # noqa: E402
from face_alignment.models import FAN  # noqa: E402

SFD_CONF_LAYERS = ("conv3_3_norm_mbox_conf", "conv4_3_norm_mbox_conf", "conv5_3_norm_mbox_conf", "fc7_mbox_conf", "conv6_2_mbox_conf", "conv7_2_mbox_conf")


def constructed_sfd_weights(faces_everywhere: bool) -> dict[str, torch.Tensor]:
    """S3FD with all weights zero; the class biases decide: face at every anchor, or nowhere."""
    state = {k: torch.zeros_like(v) for k, v in s3fd().state_dict().items()}
    for layer in SFD_CONF_LAYERS:
        bias = state[f"{layer}.bias"]
        bias[-1] = 10.0 if faces_everywhere else -10.0  # last channel: face; the others: background
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Folders of test-made weights: ``home`` (a TORCH_HOME: FAN + an S3FD that fires
    everywhere), ``never`` (FAN + an S3FD that never fires), ``fan_only``. The ~280 MB
    of files are deleted after the module."""
    home = tmp_path_factory.mktemp("torch_home")
    hub = home / "hub" / "checkpoints"
    never, fan_only = tmp_path_factory.mktemp("never"), tmp_path_factory.mktemp("fan_only")
    hub.mkdir(parents=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(FAN(4).state_dict(), hub / FAN_FILE)
    torch.save(constructed_sfd_weights(True), hub / SFD_FILE)
    torch.save(constructed_sfd_weights(False), never / SFD_FILE)
    for folder in (never, fan_only):
        os.symlink(hub / FAN_FILE, folder / FAN_FILE)
    yield {"home": home, "hub": hub, "never": never, "fan_only": fan_only}
    for folder in (home, never, fan_only):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def torch_home(weights: dict[str, Path]) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(weights["home"]))
        yield weights["home"]


def config(**options: object):
    return load_config(overrides={"run.device": "cpu"}).with_overrides({"plugins.landmarks_fan": options})


def fan(**options: object) -> FanDetector:
    """The ``fan`` detector built by the registry from ``[plugins.landmarks_fan]`` options."""
    return PluginRegistry(env={}).create("detector", "fan", config(**options))


@pytest.fixture(scope="module")
def mediapipe_fan(torch_home: Path) -> FanDetector:
    pytest.importorskip("mediapipe")
    return fan(face_detector="mediapipe")


def test_without_weights_the_error_names_the_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    with pytest.raises(BackendUnavailableError) as info:
        PluginRegistry().create("detector", "fan", config())
    assert FAN_FILE in info.value.message and str(folder) in info.value.message
    assert FAN_URL in info.value.hint and str(folder) in info.value.hint
    assert not check().ok and FAN_FILE in check().detail


def test_fake_weights_missing_sfd_file_is_named(weights: dict[str, Path]) -> None:
    with pytest.raises(BackendUnavailableError, match=f"{SFD_FILE} are not in {weights['fan_only']}"):
        fan(weights_dir=str(weights["fan_only"]))


def test_fake_weights_plugin_matches_face_alignment_on_the_same_box(
    torch_home: Path, mediapipe_fan: FanDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from face_alignment import FaceAlignment, LandmarksType, utils

    # the same face-alignment functions, run as plain Python: numba's first-call compile
    # of them costs ~20 s on this machine and changes nothing in the result
    for jitted in ("_get_preds_fromhm", "transform_np"):
        monkeypatch.setattr(utils, jitted, getattr(utils, jitted).py_func)

    photo = data.astronaut()
    (box,) = mediapipe_fan.find_boxes([photo], ["astronaut.png"])
    ours = mediapipe_fan.detect_in_boxes([photo], ["astronaut.png"], [box])["ibug68"]
    reference = FaceAlignment(
        LandmarksType.TWO_D, device="cpu", flip_input=True, compile=False,
        face_detector="sfd", face_detector_kwargs={"path_to_detector": str(torch_home / "hub" / "checkpoints" / SFD_FILE)},
    )
    (theirs,) = reference.get_landmarks_from_image(photo, detected_faces=[box])
    # face-alignment truncates its points to whole pixels (towards zero); ours keep the fraction
    difference = ours.points[0].numpy() - theirs
    assert np.abs(difference).max() < 1.0
    assert np.abs(difference).max() > 0.0  # ours really are not truncated
    assert ours.found.tolist() == [True]


def test_fake_weights_mediapipe_boxes_batch_with_a_face_less_image(mediapipe_fan: FanDetector) -> None:
    photo = data.astronaut()
    out = mediapipe_fan.detect([photo, data.coffee()], ["astronaut.png", "coffee.png"])["ibug68"]
    assert out.found.tolist() == [True, False]
    assert out.points[1].abs().max() == 0 and out.confidence[1].max() == 0
    (box,) = mediapipe_fan.find_boxes([photo], ["astronaut.png"])
    assert box[0] < 223 < box[2] and box[1] < 128 < box[3]  # MediaPipe's box holds the nose tip
    # every point lies in face-alignment's crop square around the box (side 200·scale)
    size = box[2:] - box[:2]
    side = 200.0 * size.sum() / 195.0
    centre = box[:2] + size / 2 - np.array([0.0, 0.12 * size[1]])
    assert np.all(np.abs(out.points[0].numpy() - centre) <= side / 2 + 1.0)
    assert float(out.confidence[0].min()) >= 0.0 and float(out.confidence[0].max()) <= 1.0


def test_fake_weights_sfd_boxes_everywhere_keep_the_largest(torch_home: Path) -> None:
    detector = fan(flip_input=False)
    image = np.full((128, 128, 3), 90, np.uint8)
    with pytest.warns(UserWarning, match="faces found in grey.png; using the largest"):
        (box,) = detector.find_boxes([image], ["grey.png"])
    # S3FD's largest anchors: stride 128, side 4·128, centred on a cell (64 + 128·k)
    np.testing.assert_allclose(box[2:] - box[:2], [512.0, 512.0], atol=1e-3)
    centre = (box[:2] + box[2:]) / 2
    np.testing.assert_allclose((centre - 64.0) % 128.0, [0.0, 0.0], atol=1e-3)
    with pytest.warns(UserWarning):
        out = detector.detect([image], ["grey.png"])["ibug68"]
    assert out.found.tolist() == [True] and torch.isfinite(out.points).all()


def test_fake_weights_sfd_finding_no_face_gives_found_false(weights: dict[str, Path]) -> None:
    detector = fan(weights_dir=str(weights["never"]), flip_input=False)
    out = detector.detect([np.full((96, 128, 3), 90, np.uint8)], ["grey.png"])["ibug68"]
    assert out.found.tolist() == [False] and out.missing == ["grey.png"]


def test_fake_weights_a_broken_weights_file_is_an_input_error(tmp_path: Path, weights: dict[str, Path]) -> None:
    (tmp_path / FAN_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=f"{FAN_FILE} is not a FAN"):
        fan(weights_dir=str(tmp_path), face_detector="mediapipe")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"face_detector": "dlib"}, "plugins.landmarks_fan.face_detector = 'dlib' is not allowed"),
        ({"flip": True}, "unknown key plugins.landmarks_fan.flip"),
        ({"min_face_score": 2}, "plugins.landmarks_fan.min_face_score = 2.0 is out of range"),
        ({"flip_input": "yes"}, "plugins.landmarks_fan.flip_input must be true or false"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fan(**options)
