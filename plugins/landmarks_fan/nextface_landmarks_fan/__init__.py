"""NextFace plugin: face-alignment's 2D FAN, 68 ibug points."""

from __future__ import annotations

from typing import Any

from nextface_core import hookimpl
from nextface_core.errors import BackendUnavailableError


def _create(config: Any) -> Any:
    raise BackendUnavailableError(
        "detector 'fan' is not implemented yet", "use another detector; this plugin only registers itself for now"
    )


@hookimpl
def nextface_register_landmark_detectors(register) -> None:
    register("fan", _create, description="face-alignment's 2D FAN, 68 ibug points.")
