"""The landmark contract: :class:`LandmarkSet` and the :class:`LandmarkDetector` protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch


@dataclass
class LandmarkSet:
    """2D landmarks of one schema for a batch of B images.

    ``schema``: e.g. ``"ibug68"`` or ``"mediapipe478"``. ``points [B,L,2]`` in pixels
    (x right, y down; pixel centres at integer + 0.5). ``confidence [B,L]`` in [0, 1].
    ``found [B]`` bool: False where no face was found (its points are zeros).
    ``names``: the image name of each row.
    """

    schema: str
    points: torch.Tensor
    confidence: torch.Tensor
    found: torch.Tensor
    names: list[str]

    def __post_init__(self) -> None:
        b = len(self.names)
        if self.points.ndim != 3 or self.points.shape[0] != b or self.points.shape[2] != 2:
            raise ValueError(f"LandmarkSet.points has shape {tuple(self.points.shape)}, expected [{b},L,2]")
        if tuple(self.confidence.shape) != tuple(self.points.shape[:2]):
            raise ValueError(
                f"LandmarkSet.confidence has shape {tuple(self.confidence.shape)}, expected {tuple(self.points.shape[:2])}"
            )
        if tuple(self.found.shape) != (b,):
            raise ValueError(f"LandmarkSet.found has shape {tuple(self.found.shape)}, expected [{b}]")

    @classmethod
    def cat(cls, sets: Sequence["LandmarkSet"]) -> "LandmarkSet":
        """Join sets of one schema along the batch axis (e.g. per-chunk detections)."""
        schemas = {s.schema for s in sets}
        if len(schemas) != 1:
            raise ValueError(f"cannot join landmark sets of different schemas {sorted(schemas)}")
        return cls(
            sets[0].schema,
            torch.cat([s.points for s in sets]),
            torch.cat([s.confidence for s in sets]),
            torch.cat([s.found for s in sets]),
            [n for s in sets for n in s.names],
        )

    def select(self, rows: Sequence[int]) -> "LandmarkSet":
        """The images at ``rows``, in that order."""
        index = torch.as_tensor(list(rows), dtype=torch.long)
        return LandmarkSet(
            self.schema, self.points[index], self.confidence[index], self.found[index], [self.names[i] for i in rows]
        )

    @property
    def missing(self) -> list[str]:
        """Names of the images in which no face was found."""
        return [n for n, f in zip(self.names, self.found.tolist()) if not f]


@runtime_checkable
class LandmarkDetector(Protocol):
    """What a detector factory returns.

    Optional parts of the contract, looked up with ``getattr``: ``close()`` frees the
    detector's resources; ``for_video()`` returns the detector to use on the consecutive
    frames of one video (it may track the face between frames and may close ``self``); see
    :func:`for_video`.
    """

    name: str

    def detect(self, images: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, LandmarkSet]:
        """Detect landmarks on ``[H,W,3]`` uint8 sRGB images → ``{schema: LandmarkSet}``."""
        ...


def for_video(detector: LandmarkDetector) -> LandmarkDetector:
    """The detector to run, in order, on the frames of one video: ``detector.for_video()``
    when the detector has a video mode (e.g. MediaPipe's face tracking), else ``detector``."""
    video = getattr(detector, "for_video", None)
    return video() if callable(video) else detector
