"""The face-region mask of the photometric terms: every pixel but what the model cannot explain.

Built from a photo's detected landmarks: the eye interiors and the mouth interior
(polygons through landmark loops, :class:`FaceRegions`) and, inside the face oval, pixels
whose colour is far from the skin's (hair or a hand crossing the face: a robust colour test
against the cheeks-and-nose band between the eyes and the mouth) are left out. Pixels
outside the oval stay in: where the rendered face covers background, the photometric term
must still see it, or nothing holds the silhouette in.
The kept region's edges ramp down over a few pixels; excluded pixels stay exactly 0.

Regions are known for ``mediapipe478`` (MediaPipe's own connection tables) and ``ibug68``
(the iBUG/300-W numbering); :func:`choose_schema` picks the densest set a detector gave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from .errors import InputError


@dataclass(frozen=True)
class FaceRegions:
    """Closed polygons of one landmark schema, as loops of its point indices: ``oval`` the
    face outline, ``eyes`` the two eye openings (lid contours), ``mouth`` the inner lip
    contour (the mouth interior when it is open)."""

    oval: tuple[int, ...]
    eyes: tuple[tuple[int, ...], tuple[int, ...]]
    mouth: tuple[int, ...]


#: MediaPipe face mesh: the loops of FACEMESH_FACE_OVAL, FACEMESH_RIGHT_EYE, FACEMESH_LEFT_EYE
#: and the inner component of FACEMESH_LIPS, ordered from their edge sets (source:
#: mediapipe 0.10.21, mediapipe/python/solutions/face_mesh_connections.py, Apache-2.0;
#: plugins/landmarks_mediapipe/tests checks them against the installed package)
MEDIAPIPE478_REGIONS = FaceRegions(
    oval=(10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377,
          400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338),
    eyes=((7, 33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163),
          (249, 263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390)),
    mouth=(13, 82, 81, 80, 191, 78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312),
)

#: iBUG 68 (0-based): jaw 0–16 then the brows back from 26 to 17; eyes 36–41 and 42–47;
#: inner lips 60–67
IBUG68_REGIONS = FaceRegions(
    oval=tuple(range(17)) + tuple(range(26, 16, -1)),
    eyes=(tuple(range(36, 42)), tuple(range(42, 48))),
    mouth=tuple(range(60, 68)),
)

REGIONS: dict[str, FaceRegions] = {"mediapipe478": MEDIAPIPE478_REGIONS, "ibug68": IBUG68_REGIONS}

#: a pixel whose colour lies further than this many robust deviations from the skin's is not skin
SKIN_DEVIATIONS = 4.0
#: least robust deviation of each colour feature (log luminance, chromaticity r, g): the
#: luminance bound is wide because shading darkens skin
MIN_DEVIATION = np.array([0.25, 0.012, 0.008])
#: eye and mouth holes and non-skin pixels grow by this fraction of the oval's width
MARGIN = 0.015
#: the kept region's edge ramps down over about this fraction of the oval's width
SOFTNESS = 0.01
#: specks of non-skin smaller than this fraction of the oval's area are noise, not occluders
MIN_OCCLUDER = 0.002


def choose_schema(schemas: Iterable[str]) -> str | None:
    """The schema among ``schemas`` with the densest known regions (None: none known)."""
    known = [s for s in REGIONS if s in set(schemas)]
    return known[0] if known else None


def _polygon(size: tuple[int, int], points: np.ndarray, loop: tuple[int, ...]) -> np.ndarray:
    """``[H,W]`` bool: the pixels whose centres lie inside the polygon of ``points[loop]``."""
    canvas = Image.new("1", (size[1], size[0]), 0)
    corners = points[list(loop)] - 0.5  # PIL's pixel (i, j) has its centre at (i, j); ours at + 0.5
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in corners.tolist()], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def _disc(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return r[:, None] ** 2 + r[None, :] ** 2 <= radius * radius


def skin_features(image: np.ndarray) -> np.ndarray:
    """``[H,W,3]`` uint8 sRGB → ``[H,W,3]`` log luminance and chromaticities r, g."""
    rgb = image.astype(np.float64) / 255.0
    total = rgb.sum(-1) + 1e-3
    luminance = rgb @ np.array([0.2126, 0.7152, 0.0722])
    return np.stack([np.log(luminance + 0.02), rgb[..., 0] / total, rgb[..., 1] / total], axis=-1)


def non_skin(image: np.ndarray, inside: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``[H,W]`` bool: pixels of ``inside`` whose colour is far from the median colour of the
    ``reference`` pixels, in robust deviations (median absolute deviation, scaled to σ)."""
    features = skin_features(image)
    sample = features[reference]
    centre = np.median(sample, axis=0)
    spread = np.maximum(1.4826 * np.median(np.abs(sample - centre), axis=0), MIN_DEVIATION)
    far = (np.abs(features - centre) / spread).max(-1) > SKIN_DEVIATIONS
    return far & inside


def face_mask(image: np.ndarray, points: np.ndarray, regions: FaceRegions) -> np.ndarray:
    """``[H,W]`` float32 in [0, 1]: 0 on the eyes, the mouth interior and the non-skin blobs
    inside the face oval of ``image [H,W,3]`` uint8 sRGB, 1 elsewhere; from its landmarks
    ``points [L,2]`` (pixels, x right, y down) with the polygons of ``regions``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"face_mask needs an [H,W,3] uint8 image, got {image.dtype} {tuple(image.shape)}",
                         "load images with nextface_core.images.load_image")
    needed = max(max(regions.oval), *map(max, regions.eyes), max(regions.mouth)) + 1
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < needed or not np.isfinite(points).all():
        raise InputError(f"face_mask needs finite landmarks [≥{needed},2], got {tuple(points.shape)}",
                         "pass the detector's points of the schema the regions belong to")
    size = image.shape[:2]
    oval = _polygon(size, points, regions.oval)
    width = float(np.ptp(points[list(regions.oval), 0]))
    grow = _disc(max(1, round(MARGIN * width)))
    holes = ndimage.binary_dilation(
        _polygon(size, points, regions.eyes[0]) | _polygon(size, points, regions.eyes[1])
        | _polygon(size, points, regions.mouth), grow)
    occluders = _occluders(image, points, regions, oval & ~holes)
    keep = ~(holes | ndimage.binary_dilation(occluders, grow))
    soft = ndimage.gaussian_filter(keep.astype(np.float32), max(0.5, SOFTNESS * width))
    return np.minimum(keep, np.clip(2.0 * soft, 0.0, 1.0)).astype(np.float32)


def _occluders(image: np.ndarray, points: np.ndarray, regions: FaceRegions, skin: np.ndarray) -> np.ndarray:
    """``[H,W]`` bool: the non-skin blobs inside ``skin`` (colour tested against the band
    between the lower eyelids and the mouth, within the outer eye corners: cheeks and nose)."""
    eyes = points[list(regions.eyes[0] + regions.eyes[1])]
    top, bottom = eyes[:, 1].max(), points[list(regions.mouth), 1].min()
    rows = (np.arange(image.shape[0]) + 0.5)[:, None]
    cols = (np.arange(image.shape[1]) + 0.5)[None, :]
    band = (rows > top) & (rows < bottom) & (cols > eyes[:, 0].min()) & (cols < eyes[:, 0].max())
    reference = skin & band
    if reference.sum() < 16:  # too small a face to measure its skin: keep the polygons only
        return np.zeros_like(skin)
    far = ndimage.binary_opening(non_skin(image, skin, reference), _disc(1))
    labels, count = ndimage.label(far)
    if count == 0:
        return far
    sizes = ndimage.sum_labels(far, labels, np.arange(1, count + 1))
    big = np.flatnonzero(sizes >= MIN_OCCLUDER * skin.sum()) + 1
    return np.isin(labels, big)
