"""NextFace plugin: the FLAME head model (model ``flame``), an out-of-tree example.

Install with ``pip install -e examples/model_flame`` (or as its own distribution,
``nextface-model-flame``); then ``nextface fit --model flame --model-path FLAME_FOLDER``.
:func:`load_flame` documents what is read and what is fixed (jaw and neck pose), the
unit conversion (metres → millimetres) and the flat albedo; :mod:`.safe_pickle` how the
pickles are read without running code.

Options, in the config's ``[plugins.model_flame]`` table: ``model_file`` (default: the
first of generic_model.pkl, flame2023.pkl, flame2020.pkl in the folder), ``landmark_file``
(flame_static_embedding.pkl), ``texture_file`` (head_template.obj or an .npz with vt/ft, for
the UV layout) and
``skin_color`` (sRGB of the flat albedo).
"""

from __future__ import annotations

from typing import Any

from nextface_core import hookimpl

from .loader import FlameOptions, load_flame
from .safe_pickle import SafeUnpickler, UnsafePickleError, load_arrays

__all__ = ["FlameOptions", "SafeUnpickler", "UnsafePickleError", "create", "default_model_dir", "load_arrays", "load_flame"]

def default_model_dir() -> Any:
    """Where FLAME is looked for when ``[model] path`` is empty: the per-user data folder."""
    import platformdirs

    return platformdirs.user_data_path("nextface") / "flame"


def create(config: Any, options: FlameOptions) -> Any:
    """The registered factory: ``[model]`` picks the folder and component counts, the checked
    ``[plugins.model_flame]`` options the files and skin tone, ``run.device`` the device."""
    from nextface_core.config import resolve_device

    return load_flame(
        config.model.path or default_model_dir(),
        options,
        n_shape=config.model.shape_components,
        n_expression=config.model.expression_components,
        device=resolve_device(config),
    )


@hookimpl
def nextface_register_models(register) -> None:
    register(
        "flame",
        create,
        description="FLAME head model (shape + expression, fixed jaw/neck, flat albedo; model.path)",
        options=FlameOptions,
    )
