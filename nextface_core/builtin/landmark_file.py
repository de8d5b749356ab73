"""Built-in detector ``file``: landmarks read from a JSON or CSV file (``--landmarks-file``)."""

from __future__ import annotations

from typing import Any

from ..project import hookimpl


def _file_detector(config: Any) -> Any:
    from ..landmark_files import FileDetector

    return FileDetector.from_config(config)


@hookimpl
def nextface_register_landmark_detectors(register) -> None:
    register("file", _file_detector, description="landmarks read from a JSON or CSV file (--landmarks-file)")
