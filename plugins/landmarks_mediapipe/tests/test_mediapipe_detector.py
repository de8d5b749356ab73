"""The real MediaPipe face mesh (models from the wheel) on scikit-image's photos.

Hand-checked boxes: the eye corners and nose tip of ``skimage.data.astronaut()`` (512×512)
were read off an 8× enlargement with a 5-pixel grid (subject's right eye: outer corner
≈ (192, 101), inner ≈ (212, 102); left eye: inner ≈ (236, 103), outer ≈ (259, 104); nose
tip ≈ (223, 127–130)); each box spans about ±4 px around those readings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data, transform

from nextface_core.config import load_config
from nextface_core.errors import ConfigError, InputError
from nextface_core.images import load_image
from nextface_core.landmarks import LandmarkDetector
from nextface_core.plugins import PluginRegistry
from nextface_landmarks_mediapipe import check
from nextface_landmarks_mediapipe.detector import IBUG68_FROM_MEDIAPIPE, MediaPipeDetector

# (x_min, x_max, y_min, y_max) in pixels
BOXES_MEDIAPIPE = {
    33: (188, 199, 96, 106),  # subject's right eye, outer corner (image left)
    133: (207, 217, 98, 108),  # right eye, inner corner
    362: (231, 241, 99, 109),  # left eye, inner corner
    263: (252, 263, 99, 109),  # left eye, outer corner (image right)
    1: (218, 229, 122, 135),  # nose tip
}
BOXES_IBUG = {36: BOXES_MEDIAPIPE[33], 39: BOXES_MEDIAPIPE[133], 42: BOXES_MEDIAPIPE[362], 45: BOXES_MEDIAPIPE[263], 30: BOXES_MEDIAPIPE[1]}

#: ibug68 left↔right: which point a horizontally mirrored face's point i corresponds to
IBUG68_MIRROR = (
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)
MIRROR_MEAN_PX = 1.5  # measured 0.75 px
MIRROR_MAX_PX = 8.0  # measured 5.2 px (a jaw-contour point)
MIRROR_BIAS_PX = 0.5  # mean signed x error; measured 0.15 px. A half-pixel convention slip gives ≈ 1


@pytest.fixture(scope="module")
def detector() -> Iterator[MediaPipeDetector]:
    with MediaPipeDetector() as det:
        yield det


@pytest.fixture(scope="module")
def astronaut(detector: MediaPipeDetector) -> dict:
    return detector.detect([data.astronaut()], ["astronaut.png"])


def inside(points: torch.Tensor, boxes: dict[int, tuple[int, int, int, int]]) -> dict[int, tuple[float, float]]:
    """The points that fall outside their box (empty when all are inside)."""
    bad = {}
    for i, (x0, x1, y0, y1) in boxes.items():
        x, y = points[i].tolist()
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            bad[i] = (round(x, 1), round(y, 1))
    return bad


def test_plugin_is_available_and_registered() -> None:
    assert check().ok, check().detail
    det = PluginRegistry().create("detector", "mediapipe", load_config())
    try:
        assert isinstance(det, MediaPipeDetector) and isinstance(det, LandmarkDetector) and det.name == "mediapipe"
    finally:
        det.close()


def test_astronaut_one_face_478_points_in_hand_checked_boxes(astronaut: dict) -> None:
    mp, ibug = astronaut["mediapipe478"], astronaut["ibug68"]
    assert mp.points.shape == (1, 478, 2) and ibug.points.shape == (1, 68, 2)
    assert mp.found.tolist() == [True] and ibug.found.tolist() == [True]
    assert mp.names == ["astronaut.png"]
    assert torch.all(mp.confidence == 1.0) and torch.all(ibug.confidence == 1.0)
    assert inside(mp.points[0], BOXES_MEDIAPIPE) == {}
    assert inside(ibug.points[0], BOXES_IBUG) == {}


def test_ibug68_view_uses_the_published_table(astronaut: dict) -> None:
    table = torch.tensor(IBUG68_FROM_MEDIAPIPE)
    expected = astronaut["mediapipe478"].points[0][table].mean(dim=1)
    assert torch.allclose(astronaut["ibug68"].points[0], expected)
    assert sorted(IBUG68_MIRROR) == list(range(68))


def test_mirrored_photo_gives_mirrored_points(detector: MediaPipeDetector, astronaut: dict) -> None:
    photo = data.astronaut()
    width = photo.shape[1]
    flipped = detector.detect([np.ascontiguousarray(photo[:, ::-1])], ["mirror.png"])
    back = flipped["ibug68"].points[0].clone()
    back[:, 0] = width - back[:, 0]  # continuous coordinates: x ↦ W − x
    error = back[IBUG68_MIRROR] - astronaut["ibug68"].points[0]
    assert error.norm(dim=1).mean() < MIRROR_MEAN_PX
    assert error.norm(dim=1).max() < MIRROR_MAX_PX
    assert abs(float(error[:, 0].mean())) < MIRROR_BIAS_PX
    # iris centres swap too: 468 (subject's right) ↔ 473 (left)
    iris = flipped["mediapipe478"].points[0, [473, 468]].clone()
    iris[:, 0] = width - iris[:, 0]
    assert (iris - astronaut["mediapipe478"].points[0, [468, 473]]).norm(dim=1).max() < 2.0


def test_no_face_in_a_batch(detector: MediaPipeDetector, astronaut: dict) -> None:
    flat = np.full((240, 320, 3), 128, np.uint8)
    out = detector.detect([data.coffee(), data.astronaut(), flat], ["coffee.png", "astronaut.png", "flat.png"])
    mp = out["mediapipe478"]
    assert mp.found.tolist() == [False, True, False]
    assert mp.missing == ["coffee.png", "flat.png"]
    assert out["ibug68"].missing == ["coffee.png", "flat.png"]
    assert mp.points[[0, 2]].abs().max() == 0 and mp.confidence[[0, 2]].max() == 0
    assert torch.allclose(mp.points[1], astronaut["mediapipe478"].points[0])  # batching changes nothing


def test_several_faces_keep_the_largest_with_a_warning(detector: MediaPipeDetector) -> None:
    face = data.astronaut()[30:230, 110:330]
    small = (transform.rescale(face, 0.6, channel_axis=2, anti_aliasing=True) * 255).astype(np.uint8)
    canvas = np.full((260, 420, 3), 200, np.uint8)
    canvas[20:220, 0:220] = face
    canvas[40 : 40 + small.shape[0], 260 : 260 + small.shape[1]] = small
    with pytest.warns(UserWarning, match="2 faces found in two.png; using the largest"):
        out = detector.detect([canvas], ["two.png"])
    assert out["mediapipe478"].found.tolist() == [True]
    assert float(out["mediapipe478"].points[0, :, 0].max()) < 220  # all on the big (left) face


def file_variants(tmp_path: Path) -> dict[str, Path]:
    photo = data.astronaut()
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:, 400:] = 0  # transparent strip away from the face
    paths = {"gray": tmp_path / "gray.png", "rgba": tmp_path / "rgba.png", "gray16": tmp_path / "gray16.png"}
    Image.fromarray(gray, mode="L").save(paths["gray"])
    Image.fromarray(np.dstack([photo, alpha]), mode="RGBA").save(paths["rgba"])
    Image.fromarray(gray.astype(np.uint16) * 257).save(paths["gray16"])
    return paths


def test_grayscale_rgba_and_16bit_files_work(detector: MediaPipeDetector, astronaut: dict, tmp_path: Path) -> None:
    paths = file_variants(tmp_path)
    images = [load_image(p) for p in paths.values()]
    out = detector.detect(images, list(paths))["mediapipe478"]
    assert out.found.tolist() == [True, True, True]
    ref = astronaut["mediapipe478"].points[0]
    for b, name in enumerate(paths):
        mean_shift = float((out.points[b] - ref).norm(dim=1).mean())
        assert mean_shift < 2.0, f"{name}: mean shift {mean_shift:.2f} px from the colour photo (measured ≤ 0.7)"
        assert inside(out.points[b], BOXES_MEDIAPIPE) == {}, name


def test_bad_images_and_options(detector: MediaPipeDetector) -> None:
    with pytest.raises(InputError, match="image x.png is float32"):
        detector.detect([np.zeros((8, 8, 3), np.float32)], ["x.png"])
    with pytest.raises(ValueError, match="2 images but 1 names"):
        detector.detect([np.zeros((8, 8, 3), np.uint8)] * 2, ["x.png"])
    registry = PluginRegistry(env={})
    bad = load_config().with_overrides({"plugins.landmarks_mediapipe": {"max_faces": 0}})
    with pytest.raises(ConfigError, match="max_faces = 0"):
        registry.create("detector", "mediapipe", bad)
    unknown = load_config().with_overrides({"plugins.landmarks_mediapipe": {"threshold": 0.3}})
    with pytest.raises(ConfigError, match="unknown key plugins.landmarks_mediapipe.threshold"):
        registry.create("detector", "mediapipe", unknown)
