"""NextFace plugin: MediaPipe 478-point face mesh (offline, models ship in the wheel)."""

from __future__ import annotations

from typing import Any

from nextface_core import hookimpl
from nextface_core.errors import BackendUnavailableError


def _create(config: Any) -> Any:
    raise BackendUnavailableError(
        "detector 'mediapipe' is not implemented yet", "use another detector; this plugin only registers itself for now"
    )


@hookimpl
def nextface_register_landmark_detectors(register) -> None:
    register("mediapipe", _create, description="MediaPipe 478-point face mesh (offline, models ship in the wheel).")
