"""Landmark overlays: where the dots land, their colours, the no-face frame, the PNG file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nextface_core.errors import UsageError
from nextface_core.landmark_schemas import IBUG68, MEDIAPIPE478
from nextface_core.landmarks import LandmarkSet
from nextface_core.overlay import (
    LOW_CONFIDENCE_COLOUR,
    NO_FACE_COLOUR,
    RIM_COLOUR,
    draw_landmarks,
    overlay_image,
    save_overlay,
)

GREY = np.full((40, 60, 3), 128, np.uint8)
GREEN = IBUG68.colour


def test_a_dot_lands_in_the_pixel_containing_the_point() -> None:
    out = draw_landmarks(GREY, np.array([[10.9, 20.1]]), radius=2)
    assert tuple(out[20, 10]) == GREEN  # x 10.9 lies in column 10, y 20.1 in row 20
    assert tuple(out[20, 12]) == GREEN and tuple(out[22, 10]) == GREEN  # radius 2
    assert tuple(out[20, 13]) == RIM_COLOUR and tuple(out[17, 10]) == RIM_COLOUR  # rim one px wider
    assert tuple(out[20, 15]) == (128, 128, 128)  # beyond the rim: untouched
    changed = np.any(out != GREY, axis=2)
    assert changed.sum() == np.count_nonzero(changed[16:25, 6:15])  # nothing drawn elsewhere
    assert np.all(GREY == 128)  # the input is not modified


def test_points_outside_or_not_finite_are_skipped() -> None:
    pts = torch.tensor([[-5.0, 3.0], [59.5, 39.5], [float("nan"), 2.0], [1000.0, 1000.0]])
    out = draw_landmarks(GREY, pts, radius=1, rim=False)
    changed = np.argwhere(np.any(out != GREY, axis=2))
    assert tuple(out[39, 59]) == GREEN
    assert changed.min() >= 38  # only the corner point's disc (clipped at the border)


def test_low_confidence_points_are_yellow() -> None:
    out = draw_landmarks(GREY, np.array([[5.5, 5.5], [30.5, 20.5]]), confidence=np.array([0.9, 0.1]), radius=1)
    assert tuple(out[5, 5]) == GREEN
    assert tuple(out[20, 30]) == LOW_CONFIDENCE_COLOUR


def sets(found: list[bool]) -> dict[str, LandmarkSet]:
    b = len(found)
    names = [f"i{k}.png" for k in range(b)]
    f = torch.tensor(found)
    dense = torch.full((b, 478, 2), 20.5)
    dense[:, :, 0] = torch.linspace(2, 57, 478)
    sparse = torch.full((b, 68, 2), 20.5)
    return {
        "mediapipe478": LandmarkSet("mediapipe478", dense, torch.ones(b, 478), f, names),
        "ibug68": LandmarkSet("ibug68", sparse, torch.ones(b, 68), f, names),
    }


def test_overlay_draws_sparse_points_over_dense_ones() -> None:
    out = overlay_image(GREY, sets([True]))
    assert tuple(out[20, 20]) == GREEN  # ibug68 on top at the shared spot
    assert tuple(out[20, 5]) == MEDIAPIPE478.colour  # dense line elsewhere, no rim
    assert tuple(out[0, 0]) == (128, 128, 128)


def test_no_face_gets_a_red_frame() -> None:
    out = overlay_image(GREY, sets([True, False]), index=1)
    assert tuple(out[0, 0]) == NO_FACE_COLOUR and tuple(out[39, 30]) == NO_FACE_COLOUR
    assert tuple(out[20, 30]) == (128, 128, 128)
    single = overlay_image(GREY, sets([False])["ibug68"])
    assert tuple(single[0, 0]) == NO_FACE_COLOUR


def test_save_overlay_writes_that_png(tmp_path: Path) -> None:
    path = save_overlay(tmp_path / "sub" / "o.png", GREY, sets([True]))
    np.testing.assert_array_equal(np.asarray(Image.open(path)), overlay_image(GREY, sets([True])))
    with pytest.raises(UsageError, match="must be a .png file"):
        save_overlay(tmp_path / "o.jpg", GREY, sets([True]))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"\[H,W,3\] uint8"):
        draw_landmarks(GREY.astype(np.float32), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"points \[L,2\]"):
        draw_landmarks(GREY, np.zeros((3,)))
