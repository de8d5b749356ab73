"""The ``mediapipe`` detector: MediaPipe's 478-point face mesh plus an ibug68 view.

MediaPipe 0.10.x ships its face detector and face-mesh models inside the wheel, so this
works offline. ``refine_landmarks=True`` gives 478 points: the 468-point mesh and 5 points
per iris (468–472 the subject's right iris, 473–477 the left).

Points are pixels: MediaPipe's normalised ``x·W, y·H``, which is NextFace's convention
(continuous coordinates, pixel centres at integer + 0.5); the mirror test checks it.

Confidence: MediaPipe's face mesh reports neither per-point visibility nor presence (both
read 0.0 for every point) and the solution API does not expose its face score, so every
point of a found face gets confidence 1 and every point of a missing face 0.

Several faces: the largest (by the area of its landmarks' bounding box) is kept, with a
warning naming the image. No face: that image's row has ``found=False``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from nextface_core.errors import BackendUnavailableError, InputError
from nextface_core.landmark_schemas import IBUG68_FROM_MEDIAPIPE
from nextface_core.landmarks import LandmarkSet
from nextface_core.logs import NativeStderr, native_stderr
from nextface_core.options import option

NUM_POINTS = 478

#: the ibug68 view of the 478 points (its published source is named in the core's schema records)
_IBUG_INDEX = torch.tensor(IBUG68_FROM_MEDIAPIPE, dtype=torch.long)  # [68, 2]


def ibug68_from_mediapipe(points: torch.Tensor, confidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B,478,2]``, ``[B,478]`` → the ibug68 view ``[B,68,2]``, ``[B,68]`` (pair midpoints)."""
    return points[:, _IBUG_INDEX].mean(dim=2), confidence[:, _IBUG_INDEX].mean(dim=2)


@dataclass(frozen=True)
class MediaPipeOptions:
    """``[plugins.landmarks_mediapipe]``: MediaPipe's face-mesh settings."""

    min_detection_confidence: float = option(0.5, "faces the detector scores lower are not found", min=0.0, max=1.0)
    max_faces: int = option(4, "faces looked for per image (the largest is kept)", min=1)
    tracking: bool = option(False, "MediaPipe's video mode: the images are consecutive frames, the face is tracked between them")


class MediaPipeDetector:
    """MediaPipe face mesh on ``[H,W,3]`` uint8 sRGB images → ``mediapipe478`` + ``ibug68``.

    The graph is built once per detector; call :meth:`close` (or use ``with``) to free it.
    MediaPipe has no batch API, so images run one after another. With the ``tracking``
    option the images must be consecutive video frames (across calls too);
    :meth:`for_video` gives such a detector.
    """

    name = "mediapipe"

    def __init__(self, options: MediaPipeOptions = MediaPipeOptions()) -> None:
        self.options = options
        # TFLite and absl log INFO/W lines to fd 2 from the graph's threads while it starts,
        # until the first frame is through: keep them out of the user's output (nextface -v shows them)
        self._quiet = NativeStderr()
        self._quiet.start()
        try:
            from mediapipe.python.solutions import face_mesh
        except Exception as exc:  # ImportError, or numpy-2 ABI errors raised at import
            self._quiet.stop()
            raise BackendUnavailableError(
                f"mediapipe cannot be imported: {type(exc).__name__}: {exc}",
                'pip install "mediapipe==0.10.21" "numpy<2"',
            ) from None
        try:
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=not options.tracking,
                max_num_faces=options.max_faces,
                refine_landmarks=True,
                min_detection_confidence=options.min_detection_confidence,
            )
        except BaseException:
            self._quiet.stop()
            raise

    def for_video(self) -> "MediaPipeDetector":
        """The detector contract's video hook: this detector in MediaPipe's tracking mode (a
        new graph; this one is closed), for the consecutive frames of one video."""
        if self.options.tracking:
            return self
        self.close()
        return MediaPipeDetector(replace(self.options, tracking=True))

    def close(self) -> None:
        """Release MediaPipe's graph."""
        self._quiet.stop()
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def __enter__(self) -> "MediaPipeDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _face(self, image: np.ndarray, name: str) -> np.ndarray | None:
        """The largest face's ``[478,2]`` pixel points in one image, or None."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(
                f"image {name} is {image.dtype} {tuple(image.shape)}, the detector needs [H,W,3] uint8 sRGB",
                "load images with nextface_core.images.load_image",
            )
        if self._mesh is None:
            raise RuntimeError("MediaPipeDetector.detect called after close()")
        with native_stderr():  # the calculators log on later frames too
            faces = self._mesh.process(np.ascontiguousarray(image)).multi_face_landmarks
        if not faces:
            return None
        h, w = image.shape[:2]
        scale = np.array([w, h], dtype=np.float64)
        # MediaPipe hands out protobuf messages: one attribute read per point is the only access
        all_points = [np.array([(p.x, p.y) for p in face.landmark], dtype=np.float64) * scale for face in faces]
        if len(all_points) > 1:
            spans = np.stack([pts.max(axis=0) - pts.min(axis=0) for pts in all_points])
            areas = spans.prod(axis=1)
            warnings.warn(
                f"{len(all_points)} faces found in {name}; using the largest "
                f"({spans[areas.argmax()][0]:.0f}×{spans[areas.argmax()][1]:.0f} px)",
                stacklevel=3,
            )
            return all_points[int(areas.argmax())]
        return all_points[0]

    def detect(self, images: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, LandmarkSet]:
        """Detect on ``[H,W,3]`` uint8 sRGB images → ``{"mediapipe478": ..., "ibug68": ...}``."""
        if len(images) != len(names):
            raise ValueError(f"detect got {len(images)} images but {len(names)} names")
        points = torch.zeros(len(images), NUM_POINTS, 2)
        found = torch.zeros(len(images), dtype=torch.bool)
        try:
            for b, (image, name) in enumerate(zip(images, names)):
                face = self._face(image, name)
                if face is not None:
                    points[b] = torch.from_numpy(face).float()
                    found[b] = True
        finally:
            self._quiet.stop()  # the graph is up: the start-up logging is over
        confidence = found[:, None].float().expand(-1, NUM_POINTS).contiguous()
        ibug_points, ibug_conf = ibug68_from_mediapipe(points, confidence)
        names = list(names)
        return {
            "mediapipe478": LandmarkSet("mediapipe478", points, confidence, found, names),
            "ibug68": LandmarkSet("ibug68", ibug_points, ibug_conf, found.clone(), names),
        }
