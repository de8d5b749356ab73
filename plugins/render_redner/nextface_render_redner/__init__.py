"""NextFace plugin: the redner differentiable ray tracer, run in a worker process of its own
Python (redner publishes wheels for Python ≤ 3.8 only; NextFace needs ≥ 3.10).

Registers renderer ``redner``. Its worker's interpreter comes from ``NEXTFACE_REDNER_PYTHON``
or ``[plugins.render_redner] python``; ``nextface plugins list`` starts the worker once to
report its Python, redner version and CPU/GPU mode (or why it cannot run), and selecting the
renderer where it cannot run raises an error with exit code 4 naming the fix.
"""

from __future__ import annotations

from nextface_core import hookimpl
from nextface_core.errors import NextFaceError
from nextface_core import Availability

from .renderer import ENV_PYTHON, SECTION, RednerOptions, RednerRenderer, create_renderer, worker_options

__all__ = ["RednerOptions", "RednerRenderer", "check", "create_renderer", "worker_options"]


def check() -> Availability:
    """Start the configured worker once (environment only: ``plugins list`` reads no config) and
    report what it runs, or why it cannot run."""
    options = worker_options(None)
    if options.python is None:
        return Availability(False, f"no worker Python configured: set {ENV_PYTHON} (or [plugins.{SECTION}] python) "
                                   "to a Python 3.8 with torch and redner")
    try:
        with RednerRenderer(options.python, source=options.source, device=options.device,
                            startup_timeout=options.startup_timeout) as renderer:
            return Availability(True, renderer.worker.info.describe())
    except NextFaceError as exc:
        return Availability(False, f"{exc.message} (fix: {exc.hint})")


@hookimpl
def nextface_register_renderers(register) -> None:
    register(
        "redner",
        create_renderer,
        description="redner differentiable ray tracer, in a worker process of a Python 3.8 environment.",
        check=check,
        options=RednerOptions,
    )
