"""NextFace plugin: Basel Face Model 2017 + AlbedoMM loader."""

from __future__ import annotations

from typing import Any

from nextface_core import hookimpl
from nextface_core.errors import BackendUnavailableError


def _create(config: Any) -> Any:
    raise BackendUnavailableError(
        "model 'basel' is not implemented yet", "use another model; this plugin only registers itself for now"
    )


@hookimpl
def nextface_register_models(register) -> None:
    register("basel", _create, description="Basel Face Model 2017 + AlbedoMM loader.")
