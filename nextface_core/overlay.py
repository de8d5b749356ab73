"""Landmark overlays: dots drawn on the photo, saved as PNG by the fit and by the CLI.

Each point is a filled disc with a one-pixel dark rim (visible on light and dark skin);
dense schemas (more than :data:`DENSE` points, e.g. ``mediapipe478``) are drawn without a
rim (and one size smaller on large images) so the sparse points on top stay readable.
Colours and layers come from the schema records (:mod:`nextface_core.landmark_schemas`:
``ibug68`` green, ``mediapipe478`` cyan underneath, other schemas magenta); points whose
confidence is below :data:`LOW_CONFIDENCE` are yellow. An image in which no face was found
gets a red frame instead of dots. :func:`fit_overlay` draws a fit's projected landmarks
next to the detections, each pair joined by its residual. Drawing is vectorised over points
(no per-point loop).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from PIL import Image

from . import landmark_schemas
from .errors import UsageError
from .files import write_bytes
from .landmarks import LandmarkSet

#: the fit's overlay (:func:`fit_overlay`): detections, projected surface points, projected contour points
DETECTED_COLOUR = (40, 220, 60)
PROJECTED_COLOUR = (230, 40, 40)
CONTOUR_COLOUR = (255, 150, 0)
LOW_CONFIDENCE = 0.5
LOW_CONFIDENCE_COLOUR = (255, 230, 0)
RIM_COLOUR = (0, 0, 0)
DENSE = 100
NO_FACE_COLOUR = (255, 0, 0)


def _disc(radius: int) -> np.ndarray:
    """``[K,2]`` integer (dy, dx) offsets of a filled disc."""
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    inside = dy**2 + dx**2 <= radius**2 + radius  # a slightly round-ish disc at small radii
    return np.stack([dy[inside], dx[inside]], axis=1)


def _stamp(canvas: np.ndarray, centres: np.ndarray, colours: np.ndarray, radius: int) -> None:
    """Paint discs of ``radius`` at integer pixel ``centres [L,2]`` (x, y) with ``colours [L,3]``, in place."""
    offsets = _disc(radius)  # [K,2]
    ys = (centres[:, None, 1] + offsets[None, :, 0]).ravel()
    xs = (centres[:, None, 0] + offsets[None, :, 1]).ravel()
    rgb = np.repeat(colours, len(offsets), axis=0)
    h, w = canvas.shape[:2]
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    canvas[ys[inside], xs[inside]] = rgb[inside]


def point_radius(height: int, width: int) -> int:
    """Dot radius in pixels for an image of this size (1 px up to ~400 px, growing slowly)."""
    return max(1, round(min(height, width) / 400))


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray | torch.Tensor,
    colour: tuple[int, int, int] = landmark_schemas.IBUG68.colour,
    confidence: np.ndarray | torch.Tensor | None = None,
    radius: int | None = None,
    rim: bool = True,
) -> np.ndarray:
    """Return a copy of ``image [H,W,3]`` uint8 with ``points [L,2]`` (pixels) drawn as dots.

    A point lands in the pixel that contains it (pixel centres at integer + 0.5); points
    outside the image are clipped away. ``confidence [L]``: points below
    :data:`LOW_CONFIDENCE` are drawn in :data:`LOW_CONFIDENCE_COLOUR`. ``radius`` defaults
    to :func:`point_radius`; ``rim`` adds a dark ring one pixel wider.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_landmarks needs an [H,W,3] uint8 image, got {image.dtype} {tuple(image.shape)}")
    pts = torch.as_tensor(points).detach().cpu().double().numpy()
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"draw_landmarks needs points [L,2], got {tuple(pts.shape)}")
    radius = point_radius(*image.shape[:2]) if radius is None else radius
    canvas = image.copy()
    finite = np.isfinite(pts).all(axis=1)
    centres = np.floor(pts[finite]).astype(np.int64)
    colours = np.tile(np.array(colour, dtype=np.uint8), (len(centres), 1))
    if confidence is not None:
        low = torch.as_tensor(confidence).detach().cpu().numpy()[finite] < LOW_CONFIDENCE
        colours[low] = LOW_CONFIDENCE_COLOUR
    if rim:
        _stamp(canvas, centres, np.tile(np.array(RIM_COLOUR, np.uint8), (len(centres), 1)), radius + 1)
    _stamp(canvas, centres, colours, radius)
    return canvas


def _segments(canvas: np.ndarray, starts: np.ndarray, ends: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Paint one-pixel lines from ``starts [L,2]`` to ``ends [L,2]`` (pixels, x y), in place."""
    steps = int(np.ceil(np.abs(ends - starts).max(initial=0.0))) + 1
    t = np.linspace(0.0, 1.0, steps)[None, :, None]
    along = np.floor(starts[:, None] + t * (ends - starts)[:, None]).reshape(-1, 2).astype(np.int64)
    h, w = canvas.shape[:2]
    inside = (along[:, 0] >= 0) & (along[:, 0] < w) & (along[:, 1] >= 0) & (along[:, 1] < h)
    canvas[along[inside, 1], along[inside, 0]] = colour


def fit_overlay(
    image: np.ndarray,
    detected: np.ndarray | torch.Tensor,
    projected: np.ndarray | torch.Tensor,
    fitted: np.ndarray | torch.Tensor,
    contour: np.ndarray | torch.Tensor,
) -> np.ndarray:
    """A copy of ``image [H,W,3]`` uint8 with a fit's landmarks: the detections ``detected
    [L,2]`` (:data:`DETECTED_COLOUR`), the model's points projected by the fit ``projected
    [L,2]`` drawn on top (:data:`PROJECTED_COLOUR` for surface points, :data:`CONTOUR_COLOUR`
    where ``contour [L]`` is true: points matched on the jaw contour), and a line from each
    detection to its projection (the residual). Rows where ``fitted [L]`` is false (weight 0)
    show the detection only."""
    det = torch.as_tensor(detected).detach().cpu().double().numpy()
    proj = torch.as_tensor(projected).detach().cpu().double().numpy()
    used = torch.as_tensor(fitted).cpu().numpy().astype(bool) & np.isfinite(proj).all(1) & np.isfinite(det).all(1)
    on_contour = torch.as_tensor(contour).cpu().numpy().astype(bool)
    dense = len(det) > DENSE
    radius = point_radius(*image.shape[:2])
    small = radius - 1 if dense else radius  # dense points: single pixels up to ~600 px, so residuals stay visible
    out = image.copy()
    _segments(out, det[used], proj[used], PROJECTED_COLOUR)
    out = draw_landmarks(out, det, DETECTED_COLOUR, radius=small, rim=not dense)
    colours = np.where(on_contour[used, None], np.array(CONTOUR_COLOUR), np.array(PROJECTED_COLOUR)).astype(np.uint8)
    _stamp(out, np.floor(proj[used]).astype(np.int64), colours, small)
    return out


def _frame(image: np.ndarray, colour: tuple[int, int, int], width: int) -> np.ndarray:
    out = image.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


def overlay_image(image: np.ndarray, sets: Mapping[str, LandmarkSet] | LandmarkSet, index: int = 0) -> np.ndarray:
    """``image [H,W,3]`` uint8 with row ``index`` of every landmark set drawn on it.

    ``sets``: one :class:`LandmarkSet` or ``{schema: LandmarkSet}`` (as detectors return).
    If no set found a face in that row, the image gets a red frame instead.
    """
    chosen = [sets] if isinstance(sets, LandmarkSet) else sorted(sets.values(), key=lambda s: landmark_schemas.layer(s.schema))
    out = image
    drawn = False
    for ls in chosen:
        if not bool(ls.found[index]):
            continue
        colour = landmark_schemas.colour(ls.schema)
        dense = ls.points.shape[1] > DENSE
        radius = max(1, point_radius(*image.shape[:2]) - 1) if dense else point_radius(*image.shape[:2])
        out = draw_landmarks(out, ls.points[index], colour, ls.confidence[index], radius=radius, rim=not dense)
        drawn = True
    if not drawn:
        out = _frame(image, NO_FACE_COLOUR, max(2, point_radius(*image.shape[:2]) * 2))
    return out if out is not image else image.copy()


def save_overlay(path: str | Path, image: np.ndarray, sets: Mapping[str, LandmarkSet] | LandmarkSet, index: int = 0) -> Path:
    """Draw row ``index`` of ``sets`` on ``image`` and save it as a PNG at ``path``."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UsageError(f"overlay {path} must be a .png file", "choose a file name ending in .png")
    buffer = io.BytesIO()
    Image.fromarray(overlay_image(image, sets, index)).save(buffer, format="PNG")
    write_bytes(path, buffer.getvalue())
    return path
