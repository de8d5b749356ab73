"""Pluggy hook specifications of the ``nextface`` project.

Every hook is registry style: NextFace calls it once per plugin with a ``register``
callback, and the plugin calls ``register(name, factory, ...)`` for each thing it
provides. Factories are called lazily, only for the name the user selects, so a
plugin whose backend is missing still lists and still explains itself.

Factory signatures (``config`` is the validated :class:`nextface_core.config.Config`;
a plugin that registered ``options=`` also receives its checked options instance,
``factory(config, options)``):

- model:    ``factory(config) -> MorphableModel``
- detector: ``factory(config) -> LandmarkDetector``
- renderer: ``factory(config) -> Renderer``
- loss:     ``factory(config) -> LossTerm``
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import pluggy

from .project import PROJECT, Availability

hookspec = pluggy.HookspecMarker(PROJECT)


class Register(Protocol):
    """The callback a hook receives.

    ``name``: what the user selects (``--renderer NAME``); unique per kind.
    ``factory``: builds the object from the config (see the module docstring).
    ``description``: one line for ``nextface plugins list``.
    ``check``: optional, cheap, must not raise; returns an
    :class:`nextface_core.Availability` saying whether the backend can run on
    this machine (e.g. which Mitsuba variants work). Omitted means "always available".
    ``options``: optional frozen dataclass of the plugin's options (fields made with
    :func:`nextface_core.options.option`); the core checks the config table
    ``[plugins.<entry point>]`` against it and calls ``factory(config, options)``.
    """

    def __call__(
        self,
        name: str,
        factory: Callable[[Any], Any],
        *,
        description: str = "",
        check: Callable[[], Availability] | None = None,
        options: type | None = None,
    ) -> None: ...


@hookspec
def nextface_register_models(register: Register) -> None:
    """Register morphable-model loaders, selected with ``--model NAME``.

    Called once per plugin when the registry first needs models. The factory
    receives the config (``config.model.path`` is the model folder, the
    ``*_components`` keys cap each basis) and returns a
    :class:`nextface_core.model.MorphableModel` on ``config.run.device``.
    """


@hookspec
def nextface_register_landmark_detectors(register: Register) -> None:
    """Register landmark detectors, selected with ``--landmarks NAME``.

    The factory receives the config and returns a
    :class:`nextface_core.landmarks.LandmarkDetector`: ``detect(images, names)``
    takes a list of ``[H, W, 3]`` uint8 sRGB arrays and returns a dict
    ``schema -> LandmarkSet`` (e.g. ``"mediapipe478"`` and ``"ibug68"``).
    """


@hookspec
def nextface_register_renderers(register: Register) -> None:
    """Register differentiable renderers, selected with ``--renderer NAME``.

    The factory receives the config and returns a
    :class:`nextface_core.render.Renderer`: ``render(RenderInputs) -> RenderOutput``,
    differentiable with respect to vertices, textures, SH light and focal.
    """


@hookspec
def nextface_register_losses(register: Register) -> None:
    """Register loss terms the fit can use, enabled and weighted by the config.

    The factory receives the config and returns a
    :class:`nextface_core.losses.LossTerm`: a callable on the fit state that returns
    a scalar tensor; its weight comes from ``config.weights``.
    """


@hookspec
def nextface_register_stages(register: Register) -> None:
    """Register fit stages, run in the order ``[fit] stages`` names them.

    The factory receives the config and returns a
    :class:`nextface_core.fitting.stages.Stage`: ``run(state, params) -> (params, report)``,
    with ``loss_stage`` naming which stage's loss weights it uses. The core registers the
    method's ``landmarks``, ``photometric`` and ``maps``; a plugin may replace one (register
    another name and list it in the config) or add one (a virtual-light stage, say).
    """
