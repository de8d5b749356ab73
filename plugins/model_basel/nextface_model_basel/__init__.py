"""NextFace plugin: Basel Face Model 2017 + AlbedoMM loader (model ``basel``).

``load_basel(folder)`` returns a :class:`nextface_core.model.MorphableModel` in millimetres
with a computed mirror-symmetric UV layout, ibug-68 landmark associations and a symmetry
map; see :mod:`nextface_model_basel.loader` for the conventions and the cache.
"""

from __future__ import annotations

from typing import Any

from nextface_core import hookimpl

from .loader import LoadInfo, cache_root, default_model_dir, load_basel

__all__ = ["LoadInfo", "cache_root", "default_model_dir", "load_basel"]


def _create(config: Any) -> Any:
    """The registered factory: ``config.model`` picks the folder and components, ``run.device`` the device."""
    from nextface_core.config import resolve_device

    model, _ = load_basel(
        config.model.path or None,
        n_shape=config.model.shape_components,
        n_expression=config.model.expression_components,
        n_albedo=config.model.albedo_components,
        device=resolve_device(config),
    )
    return model


@hookimpl
def nextface_register_models(register) -> None:
    register(
        "basel",
        _create,
        description="Basel Face Model 2017 shape/expression + AlbedoMM diffuse/specular albedo (model.path)",
    )
