"""The ``fan`` detector: face-alignment's 2D FAN (4 stacked hourglasses), 68 ibug points.

Pipeline (face-alignment's own, with its network, crop and flip helpers):

1. a face box per image, from one of two face detectors (``face_detector`` option):
   ``"sfd"`` (default) face-alignment's S3FD, which needs its weights file too, or
   ``"mediapipe"``, MediaPipe's full-range face detector, whose model ships inside the
   mediapipe 0.10 wheel (no download; needs ``pip install "mediapipe==0.10.21"``).
   Callers that already have boxes use :meth:`FanDetector.detect_in_boxes`. Several
   faces: the largest box, with a warning;
2. face-alignment's crop of 256×256 around the box, one batched FAN forward pass for all
   images (plus the horizontally flipped crops, averaged, when ``flip_input``);
3. heatmap peaks with face-alignment's quarter-pixel refinement, mapped back to the image
   in floating point (face-alignment itself truncates to whole pixels at this step).

Confidence: each point's heatmap peak value (FAN is trained on unit-height Gaussians),
clipped to [0, 1].

Weights are never downloaded here (no network is assumed): a missing file raises
:class:`~nextface_core.errors.BackendUnavailableError` naming the file, its URL and the
folder to put it in, which is torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``,
by default ``~/.cache/torch/hub/checkpoints``, where face-alignment itself caches them) or
the ``weights_dir`` option. Files are loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from nextface_core.config import resolve_device
from nextface_core.errors import BackendUnavailableError, InputError
from nextface_core.options import option
from nextface_core.landmarks import LandmarkSet

PLUGIN_NAME = "landmarks_fan"
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
FAN_URL = "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar"
SFD_FILE = "s3fd-619a316812.pth"
SFD_URL = "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth"
FACE_DETECTORS = ("sfd", "mediapipe")
NUM_POINTS = 68
HOURGLASSES = 4  # 2DFAN-4


def default_weights_dir() -> Path:
    """torch hub's checkpoint folder, where face-alignment caches its downloads."""
    return Path(torch.hub.get_dir()) / "checkpoints"


@dataclass(frozen=True)
class FanOptions:
    """``[plugins.landmarks_fan]``: the face detector, test-time flipping, the weights folder
    and the face-score threshold."""

    face_detector: str = option("sfd", "face boxes from face-alignment's S3FD or from MediaPipe", choices=FACE_DETECTORS)
    flip_input: bool = option(True, "also run FAN on the mirrored crop and average (more accurate, twice the time)")
    weights_dir: str = option("", "folder of the FAN and S3FD weights; empty = torch hub's checkpoint folder")
    min_face_score: float = option(0.5, "face boxes scoring lower are dropped", min=0.0, max=1.0)

    def folder(self) -> Path:
        return Path(self.weights_dir).expanduser() if self.weights_dir else default_weights_dir()


def weights_file(folder: Path, name: str, url: str, what: str) -> Path:
    """The path of a weights file that must already be in ``folder``; else a clear error."""
    path = folder / name
    if not path.is_file():
        raise BackendUnavailableError(
            f"{what} weights {name} are not in {folder} (face-alignment downloads them at first use; "
            "NextFace does not download)",
            f"download {url} and put it in {folder} (or set [plugins.{PLUGIN_NAME}] weights_dir)",
        )
    return path


def _load_state(path: Path, module: torch.nn.Module, what: str) -> None:
    """Load a state dict from ``path`` into ``module`` without running code (weights_only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except Exception as exc:
        raise InputError(
            f"{path} is not a {what} weights file: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            "download it again from face-alignment's URL",
        ) from None


def _largest(boxes: np.ndarray, name: str) -> np.ndarray | None:
    """The largest ``[x1,y1,x2,y2]`` of ``boxes [K,4+]``, warning when K > 1; None for K = 0."""
    if len(boxes) == 0:
        return None
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    best = boxes[int(areas.argmax()), :4].astype(np.float64)
    if len(boxes) > 1:
        warnings.warn(
            f"{len(boxes)} faces found in {name}; using the largest ({best[2] - best[0]:.0f}×{best[3] - best[1]:.0f} px)",
            stacklevel=4,
        )
    return best


def _sfd_boxes(path: Path, device: str, min_score: float) -> Callable[[np.ndarray], np.ndarray]:
    from face_alignment.detection.sfd.sfd_detector import SFDDetector

    try:  # SFDDetector loads the file with torch.load(weights_only=True)
        sfd = SFDDetector(device, path_to_detector=str(path), filter_threshold=min_score)
    except Exception as exc:
        raise InputError(
            f"{path} is not an S3FD face-detector weights file: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            f"download it again from {SFD_URL}",
        ) from None

    def boxes(image: np.ndarray) -> np.ndarray:
        found = sfd.detect_from_image(image.copy())
        return np.asarray(found, dtype=np.float64).reshape(-1, 5)

    return boxes


def _mediapipe_boxes(min_score: float) -> Callable[[np.ndarray], np.ndarray]:
    try:
        from mediapipe.python.solutions import face_detection
    except Exception as exc:
        raise BackendUnavailableError(
            f"face_detector = 'mediapipe' needs mediapipe, which cannot be imported: {exc}",
            f'pip install "mediapipe==0.10.21", or set [plugins.{PLUGIN_NAME}] face_detector = "sfd"',
        ) from None
    finder = face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score)

    def boxes(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        found = finder.process(np.ascontiguousarray(image)).detections or []
        rel = np.array(
            [[d.location_data.relative_bounding_box.xmin, d.location_data.relative_bounding_box.ymin,
              d.location_data.relative_bounding_box.width, d.location_data.relative_bounding_box.height]
             for d in found],
            dtype=np.float64,
        ).reshape(-1, 4)
        scale = np.array([w, h, w, h], dtype=np.float64)
        return np.concatenate([rel[:, :2], rel[:, :2] + rel[:, 2:]], axis=1) * scale

    return boxes


def heatmap_peaks(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N,L,H,W]`` heatmaps → peaks ``[N,L,2]`` (x, y in heatmap pixels) and values ``[N,L]``.

    face-alignment's rule, vectorised: the arg-max cell, moved a quarter cell towards the
    higher neighbour in x and in y (interior cells only), as continuous coordinates
    (cell centre = index + 0.5).
    """
    n, l, h, w = heatmaps.shape
    values, flat = heatmaps.reshape(n, l, h * w).max(dim=-1)
    px, py = flat % w, flat // w
    inner = ((px > 0) & (px < w - 1) & (py > 0) & (py < h - 1)).to(heatmaps.dtype)

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        index = (y.clamp(0, h - 1) * w + x.clamp(0, w - 1)).unsqueeze(-1)
        return heatmaps.reshape(n, l, h * w).gather(-1, index).squeeze(-1)

    dx = torch.sign(at(py, px + 1) - at(py, px - 1))
    dy = torch.sign(at(py + 1, px) - at(py - 1, px))
    peaks = torch.stack([px.to(heatmaps.dtype) + 0.5 + 0.25 * dx * inner, py.to(heatmaps.dtype) + 0.5 + 0.25 * dy * inner], dim=-1)
    return peaks, values


class FanDetector:
    """face-alignment's 2D FAN on ``[H,W,3]`` uint8 sRGB images → ``{"ibug68": LandmarkSet}``."""

    name = "fan"

    def __init__(self, config: Any, options: FanOptions = FanOptions()) -> None:
        self.options = options
        self.device = resolve_device(config)
        folder = self.options.folder()
        fan_path = weights_file(folder, FAN_FILE, FAN_URL, "FAN (2DFAN-4)")
        sfd_path = weights_file(folder, SFD_FILE, SFD_URL, "S3FD face-detector") if self.options.face_detector == "sfd" else None
        try:
            from face_alignment import utils as fa_utils
            from face_alignment.models import FAN
        except Exception as exc:
            raise BackendUnavailableError(f"face-alignment cannot be imported: {exc}", "pip install face-alignment>=1.4") from None
        self._fa = fa_utils
        net = FAN(HOURGLASSES)
        _load_state(fan_path, net, "FAN (2DFAN-4)")
        self._net = net.to(self.device).eval()
        score = self.options.min_face_score
        self._find = _sfd_boxes(sfd_path, self.device, score) if sfd_path else _mediapipe_boxes(score)

    def find_boxes(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray | None]:
        """The largest face box ``[x1,y1,x2,y2]`` (pixels) of each image, or None."""
        return [_largest(self._find(_checked(image, name)), name) for image, name in zip(images, names)]

    def detect_in_boxes(
        self, images: Sequence[np.ndarray], names: Sequence[str], boxes: Sequence[np.ndarray | None]
    ) -> dict[str, LandmarkSet]:
        """FAN landmarks inside given face boxes (``None``: no face in that image)."""
        if not len(images) == len(names) == len(boxes):
            raise ValueError(f"detect_in_boxes got {len(images)} images, {len(names)} names, {len(boxes)} boxes")
        fa = self._fa
        rows = [b for b, box in enumerate(boxes) if box is not None]
        points = torch.zeros(len(images), NUM_POINTS, 2)
        confidence = torch.zeros(len(images), NUM_POINTS)
        if rows:
            box = np.stack([np.asarray(boxes[b], dtype=np.float64)[:4] for b in rows])  # [N,4]
            size = box[:, 2:] - box[:, :2]
            centre = box[:, :2] + size / 2
            centre[:, 1] -= size[:, 1] * fa.CENTER_Y_OFFSET
            scale = size.sum(axis=1) / fa.REFERENCE_SCALE
            crops = np.stack(
                [fa.crop(_checked(images[b], names[b]), centre[k], scale[k]) for k, b in enumerate(rows)]
            )  # [N,256,256,3] uint8
            batch = torch.from_numpy(crops).permute(0, 3, 1, 2).to(self.device, torch.float32) / 255.0
            with torch.no_grad():
                heatmaps = self._net(batch)[-1]
                if self.options.flip_input:
                    mirrored = self._net(fa.flip(batch))[-1]
                    heatmaps = (heatmaps + fa.flip(mirrored, is_label=True)) / 2
            peaks, values = heatmap_peaks(heatmaps.float().cpu())
            span = torch.from_numpy(fa.SCALE_FACTOR * scale).float()[:, None, None]  # crop side in image pixels
            mapped = (peaks / heatmaps.shape[-1] - 0.5) * span + torch.from_numpy(centre).float()[:, None, :]
            index = torch.tensor(rows)
            points[index] = mapped
            confidence[index] = values.clamp(0.0, 1.0)
        found = torch.tensor([box is not None for box in boxes], dtype=torch.bool)
        return {"ibug68": LandmarkSet("ibug68", points, confidence, found, list(names))}

    def detect(self, images: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, LandmarkSet]:
        """Find the largest face of each image and its 68 landmarks → ``{"ibug68": ...}``."""
        if len(images) != len(names):
            raise ValueError(f"detect got {len(images)} images but {len(names)} names")
        return self.detect_in_boxes(images, names, self.find_boxes(images, names))


def _checked(image: np.ndarray, name: str) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(
            f"image {name} is {image.dtype} {tuple(image.shape)}, the detector needs [H,W,3] uint8 sRGB",
            "load images with nextface_core.images.load_image",
        )
    return image
