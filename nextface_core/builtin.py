"""The core's own plugin: what every NextFace installation provides without extra packages.

Registered by every :class:`~nextface_core.plugins.PluginRegistry` under the name ``core``.
"""

from __future__ import annotations

from typing import Any

from .plugins import hookimpl


def _file_detector(config: Any) -> Any:
    from .landmark_files import FileDetector

    return FileDetector.from_config(config)


@hookimpl
def nextface_register_landmark_detectors(register) -> None:
    register("file", _file_detector, description="landmarks read from a JSON or CSV file (--landmarks-file)")


@hookimpl
def nextface_register_losses(register) -> None:
    from .losses import standard_terms

    for term in standard_terms():
        register(term.name, lambda config, term=term: term, description=(term.fn.__doc__ or "").split("\n")[0])


@hookimpl
def nextface_register_stages(register) -> None:
    from .fitting.stages import builtin_stages

    for name, stage in builtin_stages().items():
        register(name, stage, description=(stage.__doc__ or "").split("\n")[0])
