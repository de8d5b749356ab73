"""Turning photographs into the fit's batch: resize, linearise, pad to a common size."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from ..color import srgb_to_linear
from ..errors import InputError
from ..face_mask import REGIONS, choose_schema, face_mask
from ..landmarks import LandmarkSet

log = logging.getLogger(__name__)

#: a face fit needs at least this many pixels on the shorter side of a photo
MIN_SIDE = 64
#: photos with a longer side above this are refused (decoding them costs GBs of memory;
#: the fit works at ``run.max_resolution`` anyway)
MAX_SIDE = 8000


def check_image_size(image: np.ndarray, name: str) -> None:
    """Refuse photos too small to hold a face or too large to decode safely (InputError)."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"{name} is {w}×{h} pixels, too small for a face fit",
                         f"use a photo whose shorter side is at least {MIN_SIDE} pixels")
    if max(h, w) > MAX_SIDE:
        raise InputError(f"{name} is {w}×{h} pixels, larger than {MAX_SIDE} pixels a side",
                         f"downscale it to at most {MAX_SIDE} pixels first (the fit runs at run.max_resolution)")


@dataclass
class ImageBatch:
    """A batch of B photos of possibly different sizes, padded to ``[B,H,W,*]``.

    ``srgb``: the (resized) photos as uint8 arrays; ``images [B,H,W,3]`` linear RGB;
    ``valid [B,H,W,1]`` 1 inside each photo, 0 in its padding; ``sizes`` (h, w) per photo;
    ``scales`` resize factor applied to each photo; ``principal_point [B,2]`` each photo's centre;
    ``face_mask [B,H,W,1]`` in [0, 1] the face region (:mod:`nextface_core.face_mask`;
    ones where it is unknown); the photometric terms count it when ``fit.face_mask`` is on.
    """

    names: list[str]
    srgb: list[np.ndarray]
    images: torch.Tensor
    valid: torch.Tensor
    sizes: list[tuple[int, int]]
    scales: list[float]
    principal_point: torch.Tensor
    face_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.face_mask is None:
            self.face_mask = torch.ones_like(self.valid)

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.images.shape[1], self.images.shape[2])

    @property
    def longer_sides(self) -> torch.Tensor:
        """``[B]`` the longer side of each photo in pixels."""
        return self.principal_point.new_tensor([float(max(h, w)) for h, w in self.sizes])

    def image(self, index: int) -> "ImageBatch":
        """Photo ``index`` alone (a batch of one, still padded to this batch's size)."""
        at = slice(index, index + 1)
        return ImageBatch(self.names[at], self.srgb[at], self.images[at], self.valid[at], self.sizes[at],
                          self.scales[at], self.principal_point[at], self.face_mask[at])


def resize_to_limit(image: np.ndarray, max_resolution: int) -> tuple[np.ndarray, float]:
    """Scale ``[H,W,3]`` uint8 down so its longer side is at most ``max_resolution``."""
    h, w = image.shape[:2]
    scale = min(1.0, max_resolution / max(h, w))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS)), scale


def make_batch(
    images: Sequence[np.ndarray],
    names: Sequence[str],
    max_resolution: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ImageBatch:
    """Resize each ``[H,W,3]`` uint8 sRGB photo, linearise, and pad to the largest size."""
    for image, name in zip(images, names):
        check_image_size(image, name)
    resized = [resize_to_limit(np.ascontiguousarray(im), max_resolution) for im in images]
    sizes = [im.shape[:2] for im, _ in resized]
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    batch = torch.zeros(len(images), height, width, 3, dtype=dtype)
    valid = torch.zeros(len(images), height, width, 1, dtype=dtype)
    for i, (im, _) in enumerate(resized):
        h, w = im.shape[:2]
        batch[i, :h, :w] = torch.from_numpy(np.array(im, copy=True)).to(dtype) / 255.0
        valid[i, :h, :w] = 1.0
    pp = torch.tensor([[w / 2.0, h / 2.0] for h, w in sizes], dtype=dtype)
    return ImageBatch(
        names=list(names),
        srgb=[im for im, _ in resized],
        images=srgb_to_linear(batch).to(device),
        valid=valid.to(device),
        sizes=[(int(h), int(w)) for h, w in sizes],
        scales=[s for _, s in resized],
        principal_point=pp.to(device),
    )


def face_masks(batch: ImageBatch, detections: Mapping[str, LandmarkSet]) -> torch.Tensor:
    """``[B,H,W,1]`` the face region of each photo of ``batch`` (:func:`~nextface_core.face_mask.face_mask`)
    from ``detections`` (``{schema: set}`` in original-image pixels), with the densest schema
    that has known regions; ones for a photo without a face or when no schema has regions."""
    mask = torch.ones_like(batch.valid)
    schema = choose_schema(detections)
    if schema is None:
        log.info("no face-region polygons for landmark schema(s) %s: the face mask is every pixel", ", ".join(detections))
        return mask
    found = detections[schema]
    for b, (image, scale) in enumerate(zip(batch.srgb, batch.scales)):
        if bool(found.found[b]):
            points = found.points[b].double().numpy() * scale
            h, w = image.shape[:2]
            mask[b, :h, :w, 0] = torch.from_numpy(face_mask(image, points, REGIONS[schema])).to(mask)
    return mask
