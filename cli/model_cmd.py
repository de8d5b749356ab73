"""``nextface model info``: what a morphable model contains and how fast it loads."""

from __future__ import annotations

from .main import _not_yet, model_app


@model_app.command("info")
def info() -> None:
    """Vertex, triangle and component counts, units, UV quality and landmark schemas of a model."""
    _not_yet("model info", "arrives with the model_basel issue")
