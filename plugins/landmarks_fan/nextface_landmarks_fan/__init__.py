"""NextFace plugin: face-alignment's 2D FAN, 68 ibug points.

Registers detector ``fan``; see :mod:`nextface_landmarks_fan.detector`.
"""

from __future__ import annotations

from importlib import util
from typing import Any

from nextface_core import Availability, hookimpl


def _create(config: Any, options: Any) -> Any:
    from .detector import FanDetector

    return FanDetector(config, options)


def check() -> Availability:
    """Whether face-alignment is installed and the FAN weights are in torch hub's folder."""
    if util.find_spec("face_alignment") is None:
        return Availability(False, "face-alignment is not installed: pip install face-alignment")
    from .detector import FAN_FILE, SFD_FILE, default_weights_dir

    folder = default_weights_dir()
    absent = [name for name in (FAN_FILE, SFD_FILE) if not (folder / name).is_file()]
    if FAN_FILE in absent:
        return Availability(False, f"weights {FAN_FILE} are not in {folder} (no download here; see the plugin README)")
    if absent:
        return Availability(True, f"FAN weights found; {SFD_FILE} missing, so use face_detector = \"mediapipe\"")
    return Availability(True, f"FAN and S3FD weights found in {folder}")


@hookimpl
def nextface_register_landmark_detectors(register) -> None:
    from .detector import FanOptions

    register(
        "fan",
        _create,
        description="face-alignment's 2D FAN, 68 ibug points (weights in torch hub's folder).",
        check=check,
        options=FanOptions,
    )
