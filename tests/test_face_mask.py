"""The face-region mask (issue 21, item 3): what it keeps and leaves out on the real astronaut
photo with MediaPipe's points and with the ibug68 fallback, a painted occluder, the
photometric loss ignoring what it leaves out, and ``mask.png`` (with the projected points of
``landmarks.png``, item 4) from a CLI fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nextface_core.errors import InputError
from nextface_core.face_mask import IBUG68_REGIONS, MEDIAPIPE478_REGIONS, _polygon, choose_schema, face_mask
from nextface_core.fitting.inputs import face_masks, make_batch, resize_to_limit
from nextface_core.landmarks import LandmarkSet
from nextface_core.losses import photometric_loss
from nextface_core.overlay import CONTOUR_COLOUR, PROJECTED_COLOUR
from nextface_core.testing.kit import synthetic_loss_context

#: MediaPipe face-mesh points: iris centres (subject's right, left), cheeks, forehead centre, brows
IRISES = (468, 473)
CHEEKS = (50, 280)
FOREHEAD, BROW_TOPS = 10, (105, 334)
GREEN = (0, 255, 0)


def _at(mask: np.ndarray, point: np.ndarray) -> float:
    return float(mask[int(point[1]), int(point[0])])


@pytest.fixture(scope="module")
def astronaut() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The astronaut at 256 px and its MediaPipe detections (both schemas) in its pixels."""
    pytest.importorskip("nextface_landmarks_mediapipe")
    from nextface_landmarks_mediapipe.detector import MediaPipeDetector
    from skimage import data

    image, scale = resize_to_limit(data.astronaut(), 256)
    with MediaPipeDetector() as detector:
        found = detector.detect([image], ["astronaut"])
    return image, {schema: s.points[0].double().numpy() for schema, s in found.items()}


def test_mediapipe_mask_leaves_out_eyes_and_open_mouth_and_keeps_cheeks(astronaut) -> None:
    image, points = astronaut
    mp = points["mediapipe478"]
    mask = face_mask(image, mp, MEDIAPIPE478_REGIONS)
    assert mask.shape == image.shape[:2] and mask.dtype == np.float32 and 0.0 <= mask.min() and mask.max() <= 1.0
    for i in IRISES:
        assert _at(mask, mp[i]) == 0.0, f"iris centre {i} is in the mask"
    assert _at(mask, (mp[13] + mp[14]) / 2) == 0.0  # she smiles with her teeth showing
    for i in CHEEKS:
        assert _at(mask, mp[i]) == 1.0, f"cheek point {i} is out of the mask"
    # the background stays in: where the render spills over it, the silhouette must pay
    # (a mask of the oval alone let stage 2 spread the head over the background)
    assert _at(mask, np.array([5.0, 5.0])) == 1.0


def test_hair_and_a_painted_occluder_across_the_forehead_are_left_out(astronaut) -> None:
    image, points = astronaut
    mp = points["mediapipe478"]
    painted = image.copy()
    top, bottom = int(mp[FOREHEAD, 1]) + 2, int(min(mp[BROW_TOPS, 1])) - 3
    painted[top:bottom] = GREEN  # a band across the whole forehead, under the hairline
    mask = face_mask(painted, mp, MEDIAPIPE478_REGIONS)
    oval = _polygon(image.shape[:2], mp, MEDIAPIPE478_REGIONS.oval)
    band = np.zeros_like(oval)
    band[top:bottom] = True
    assert (band & oval).sum() > 100
    assert mask[band & oval].max() == 0.0, "green pixels kept in the mask"
    for i in CHEEKS:
        assert _at(mask, mp[i]) == 1.0
    # without paint, her fringe crossing the oval above the brows is left out (a third of it measured)
    forehead = oval.copy()
    forehead[int(min(mp[BROW_TOPS, 1])):] = False
    assert face_mask(image, mp, MEDIAPIPE478_REGIONS)[forehead].mean() < 0.8


def test_ibug68_fallback_builds_the_same_regions(astronaut) -> None:
    image, points = astronaut
    ibug = points["ibug68"]
    mask = face_mask(image, ibug, IBUG68_REGIONS)
    for eye in (range(36, 42), range(42, 48)):
        assert _at(mask, ibug[list(eye)].mean(0)) == 0.0
    assert _at(mask, ibug[list(range(60, 68))].mean(0)) == 0.0  # the open mouth
    mp = points["mediapipe478"]
    for i in CHEEKS:
        assert _at(mask, mp[i]) == 1.0
    assert choose_schema(["ibug68"]) == "ibug68"
    assert choose_schema(["ibug68", "mediapipe478"]) == "mediapipe478"
    assert choose_schema(["custom12"]) is None


def test_batch_masks_follow_the_resize_and_unknown_schemas_give_ones(astronaut) -> None:
    image, points = astronaut
    big = np.asarray(Image.fromarray(image).resize((512, 512), Image.Resampling.LANCZOS))
    batch = make_batch([big], ["a"], 256)
    sets = {"ibug68": LandmarkSet("ibug68", torch.from_numpy(points["ibug68"] * 2.0)[None].float(),
                                  torch.ones(1, 68), torch.tensor([True]), ["a"])}
    mask = face_masks(batch, sets)
    assert mask.shape == (1, 256, 256, 1)
    eye = points["ibug68"][36:42].mean(0)
    assert float(mask[0, int(eye[1]), int(eye[0]), 0]) == 0.0  # points in original pixels, mask in the fit's
    other = {"custom12": LandmarkSet("custom12", torch.zeros(1, 12, 2), torch.ones(1, 12), torch.tensor([True]), ["a"])}
    assert bool((face_masks(batch, other) == 1).all())


def test_bad_landmarks_are_refused_with_a_fix() -> None:
    with pytest.raises(InputError, match="landmarks"):
        face_mask(np.zeros((64, 64, 3), np.uint8), np.zeros((20, 2)), IBUG68_REGIONS)


def test_photometric_loss_ignores_pixels_outside_the_face_mask() -> None:
    ctx = synthetic_loss_context(2, batch=1, image_size=16)
    face = torch.zeros_like(ctx.valid)
    face[:, 4:12, 4:12] = 1.0
    ctx.face_mask = face
    before = photometric_loss(ctx)
    changed = ctx.images.clone()
    changed[:, :4] = 1.0 - changed[:, :4]  # rows outside the mask
    ctx.images = changed
    assert torch.allclose(photometric_loss(ctx), before)
    ctx.face_mask = None  # every covered pixel counts again: the change shows
    assert not torch.allclose(photometric_loss(ctx), before)


def test_a_cli_fit_writes_mask_png_and_reports_the_face_psnr(tmp_path: Path) -> None:
    from nextface_core.synthetic.dataset import QUICK_FIT, write_synthetic_dataset
    from nextface_model_basel.testing import write_synthetic_basel

    ds = write_synthetic_dataset(tmp_path / "ds", "basel", write_synthetic_basel, count=1, size=64,
                                 fit={**QUICK_FIT, "fit": {"face_mask": True}})  # the mask in the loss, end to end
    face = next(ds.images.glob("*.png"))
    code = "import sys; from nextface_cli.main import main; sys.argv = ['nextface'] + sys.argv[1:]; main()"
    done = subprocess.run([sys.executable, "-c", code, "fit", str(face), "-o", str(tmp_path / "out"),
                           "--config", str(ds.config)], capture_output=True, text=True,
                          env={**os.environ, "NEXTFACE_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    mask = np.asarray(Image.open(tmp_path / "out" / face.stem / "mask.png"))
    assert mask.shape == (64, 64) and mask.dtype == np.uint8
    assert (mask == 0).any() and (mask == 255).any()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    row = summary["images"][0]
    assert summary["face_mask_in_loss"] is True and set(summary["psnr_regions"]) == {"psnr_db", "psnr_face_db"}
    assert row["psnr_face_db"] is not None and 0 < row["face_pixels"] < row["coverage_pixels"]
    # item 4: landmarks.png shows the model's points where the fit projected them
    overlay = np.asarray(Image.open(tmp_path / "out" / face.stem / "landmarks.png"))
    with np.load(tmp_path / "out" / face.stem / "params.npz") as params:
        detected = np.any(params["landmarks_detected"] != 0, axis=1)  # the contour rows the photo lacks are (0, 0)
        projected = np.floor(params["landmarks_projected"][detected]).astype(int)
    colours = {tuple(overlay[y, x]) for x, y in projected}
    assert detected.sum() >= 40 and colours <= {PROJECTED_COLOUR, CONTOUR_COLOUR} and PROJECTED_COLOUR in colours, colours
