"""Test and benchmark helpers for NextFace and for third-party plugin authors.

:func:`synthetic_model` builds a face-like morphable model in memory;
:func:`write_synthetic_basel` writes the same model in the Basel 2017 + AlbedoMM file
layouts, so model loaders can be tested without the licensed Basel files. ``size="small"``
has a few hundred vertices (unit tests); ``size="full"`` has the real BFM sizes
(28588 vertices, 56572 triangles, 199 shape / 100 expression / 199 colour and 145 albedo
components) for benchmarks.

:mod:`nextface_core.testing.kit` holds the plugin test kit (fresh registries, contract
checks for renderer / detector / model / loss plugins); fixtures are in
:mod:`nextface_core.testing.pytest_plugin`.
"""

from .synthetic import (
    ALBEDO_FILE,
    CONTOUR_FILE,
    FULL_FACES,
    FULL_VERTICES,
    LANDMARKS_FILE,
    MODEL_FILE,
    SyntheticBaselFiles,
    synthetic_model,
    write_synthetic_basel,
)
from .kit import ContractError, check_detector, check_loss, check_model, check_plugin, check_renderer, fresh_registry

__all__ = [
    "ALBEDO_FILE",
    "CONTOUR_FILE",
    "ContractError",
    "FULL_FACES",
    "FULL_VERTICES",
    "LANDMARKS_FILE",
    "MODEL_FILE",
    "SyntheticBaselFiles",
    "check_detector",
    "check_loss",
    "check_model",
    "check_plugin",
    "check_renderer",
    "fresh_registry",
    "synthetic_model",
    "write_synthetic_basel",
]
