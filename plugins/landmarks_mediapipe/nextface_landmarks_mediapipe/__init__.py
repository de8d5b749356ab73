"""NextFace plugin: MediaPipe 478-point face mesh (offline, models ship in the wheel).

Registers detector ``mediapipe``; see :mod:`nextface_landmarks_mediapipe.detector`.
"""

from __future__ import annotations

from importlib import util
from pathlib import Path
from typing import Any

from nextface_core import Availability, hookimpl

#: model files the face mesh with refined irises loads from the mediapipe wheel
MODEL_FILES = (
    "modules/face_detection/face_detection_short_range.tflite",
    "modules/face_landmark/face_landmark_with_attention.tflite",
)


def _create(config: Any, options: Any) -> Any:
    from .detector import MediaPipeDetector

    return MediaPipeDetector(options)


def check() -> Availability:
    """Whether mediapipe imports here and its wheel carries the face models."""
    spec = util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return Availability(False, 'mediapipe is not installed: pip install "mediapipe==0.10.21"')
    import numpy

    if int(numpy.__version__.split(".")[0]) >= 2:
        return Availability(False, f'mediapipe 0.10 needs numpy<2, found {numpy.__version__}: pip install "numpy<2"')
    root = Path(list(spec.submodule_search_locations)[0])
    absent = [f for f in MODEL_FILES if not (root / f).is_file()]
    if absent:
        return Availability(False, f"this mediapipe wheel lacks {', '.join(absent)} (only some 0.10.x wheels ship them: pip install mediapipe==0.10.21)")
    return Availability(True, "face mesh models found in the mediapipe wheel")


@hookimpl
def nextface_register_landmark_detectors(register) -> None:
    from .detector import MediaPipeOptions

    register(
        "mediapipe",
        _create,
        description="MediaPipe 478-point face mesh + ibug68 view (offline, models ship in the wheel).",
        check=check,
        options=MediaPipeOptions,
    )
