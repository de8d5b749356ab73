"""Test helpers for NextFace and for third-party plugin authors.

:mod:`nextface_core.testing.kit` holds the plugin test kit (fresh registries, contract
checks for renderer / detector / model / loss plugins); fixtures are in
:mod:`nextface_core.testing.pytest_plugin`. The synthetic face the kit renders comes from
:mod:`nextface_core.synthetic`.
"""

from .kit import ContractError, check_detector, check_loss, check_model, check_plugin, check_renderer, fresh_registry

__all__ = [
    "ContractError",
    "check_detector",
    "check_loss",
    "check_model",
    "check_plugin",
    "check_renderer",
    "fresh_registry",
]
