"""The ``redner`` renderer: RenderInputs → the worker process → RenderOutput, differentiably.

:class:`RednerRenderer` owns one :class:`~.client.WorkerProcess` for its whole life (started
when the renderer is made, so a bad interpreter fails before a fit starts; restarted on the
next render if a previous request was interrupted). A render that needs gradients goes
through :class:`_WorkerRender`, a ``torch.autograd.Function``: forward sends the RenderInputs
arrays with the RenderSettings and gets image and mask back; backward sends the gradients of image and mask and gets
the gradients of every input that needed one (vertices, normals, uv, textures, SH light,
focal, principal point) back, each as the dtype and on the device of its input.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch.autograd.function import once_differentiable

from nextface_core.errors import BackendUnavailableError
from nextface_core.options import option
from nextface_core.render import RenderInputs, RenderOutput, RenderSettings
from nextface_core.sh import envmap_directions, sh_basis

from .client import WORKER_MODULE, WorkerError, WorkerProcess
from .worker import nextface_redner_wire as wire

ENV_PYTHON = "NEXTFACE_REDNER_PYTHON"
SECTION = "render_redner"
#: RenderInputs fields the worker receives, in this order
ARRAY_FIELDS = ("vertices", "faces", "normals", "uv", "diffuse", "specular", "roughness", "sh", "focal", "principal_point")
ALTERNATIVES = "--renderer vertex (rasteriser) or --renderer mitsuba (ray tracer)"
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RednerOptions:
    """``[plugins.render_redner]``, declared once and checked by the core."""

    python: str = option("", "the worker's interpreter: a Python 3.8 with torch and redner (NEXTFACE_REDNER_PYTHON overrides it)")
    device: str = option("auto", "auto: CUDA when the worker has redner-gpu and a GPU", choices=DEVICES)
    envmap_height: int = option(32, "rows of the light's environment map (32 resolves 9 SH bands)", min=8, max=1024)
    startup_timeout: float = option(120.0, "seconds to wait for the worker to start", min=0.001)


@dataclass(frozen=True)
class WorkerOptions:
    """The worker to start: ``python`` (None when none is configured) and ``source``, where it
    came from (for messages); the rest as in :class:`RednerOptions`."""

    python: str | None = None
    source: str = ENV_PYTHON
    device: str = "auto"
    envmap_height: int = 32
    startup_timeout: float = 120.0


def worker_options(options: RednerOptions | None = None, env: Mapping[str, str] | None = None) -> WorkerOptions:
    """The worker from the checked ``options`` (defaults when None) and ``env``
    (``NEXTFACE_REDNER_PYTHON`` wins over the config's ``python``)."""
    env = os.environ if env is None else env
    options = options or RednerOptions()
    python, source = (options.python or None), f"[plugins.{SECTION}] python"
    if env.get(ENV_PYTHON):
        python, source = env[ENV_PYTHON], ENV_PYTHON
    return WorkerOptions(python, source, options.device, options.envmap_height, float(options.startup_timeout))


@lru_cache(maxsize=8)
def _envmap_basis(bands: int, height: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """The core's SH basis at the texel directions of an ``[H, 2H]`` map, columns flipped for redner → ``[bands², H, 2H]``."""
    return sh_basis(envmap_directions(height, device, dtype), bands).permute(2, 0, 1).flip(2).contiguous()


class RednerRenderer:
    """redner in a worker process, behind the NextFace :class:`~nextface_core.render.Renderer` protocol.

    ``python``: the worker's interpreter; ``module``/``pythonpath``: the worker module and extra
    folders for it (tests run a stand-in); the other arguments as in :class:`WorkerOptions`.
    Use it as a context manager, or call :meth:`close`, to stop the worker early; otherwise it
    stops when the renderer is garbage-collected or the interpreter exits.
    """

    name = "redner"

    def __init__(
        self,
        python: str,
        *,
        source: str = ENV_PYTHON,
        device: str = "auto",
        envmap_height: int = 32,
        startup_timeout: float = 120.0,
        module: str = WORKER_MODULE,
        pythonpath: Sequence[str | Path] = (),
    ) -> None:
        self.envmap_height = envmap_height
        self._spawn = dict(source=source, module=module, args=("--device", device), pythonpath=tuple(pythonpath),
                           startup_timeout=startup_timeout)
        self._python = python
        self._ids = itertools.count(1)
        self._worker: WorkerProcess | None = None
        self.worker  # start now: a bad interpreter fails before the fit

    @property
    def worker(self) -> WorkerProcess:
        """The worker: a fresh one if the last one was stopped (:meth:`close`, or an error
        that stopped it); one that died on its own stays, so its next request reports it."""
        if self._worker is None or self._worker.stopped:
            self._worker = WorkerProcess(self._python, **self._spawn)
        return self._worker

    def close(self) -> None:
        """Stop the worker now (a later render starts a new one)."""
        if self._worker is not None:
            self._worker.close()

    def __enter__(self) -> "RednerRenderer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def render(self, inputs: RenderInputs, settings: RenderSettings) -> RenderOutput:
        """Render ``inputs`` in the worker with ``settings`` → linear RGB ``[B,H,W,3]`` and coverage
        ``[B,H,W,1]``, differentiable w.r.t. every floating-point input that requires a gradient."""
        tensors = [getattr(inputs, name) for name in ARRAY_FIELDS]
        bands = int(round(inputs.sh.shape[1] ** 0.5))
        basis = _envmap_basis(bands, self.envmap_height, inputs.sh.dtype, str(inputs.sh.device))
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            image, mask = _WorkerRender.apply(self, settings, basis, *tensors)
        else:
            image, mask = self.send_render(settings, basis, tensors, [])[:2]
        return RenderOutput(image=image, mask=mask)

    def send_render(self, settings: RenderSettings, basis: torch.Tensor, tensors: Sequence[torch.Tensor], grad: list[str]):
        """One ``render`` request → ``(image, mask, render id, worker pid)``, as the dtype and on the device of the vertices."""
        worker = self.worker
        arrays = dict(zip(ARRAY_FIELDS, (t.detach() for t in tensors)))
        arrays["envmap_basis"] = basis
        render_id = next(self._ids)
        on_wire = wire.Settings(settings.image_size, settings.samples, settings.seed, settings.mode.value)._asdict()
        _, out = worker.request("render", {"id": render_id, "settings": on_wire, "grad": grad}, arrays, "rendered")
        like = tensors[0]
        return out["image"].to(like.device, like.dtype), out["mask"].to(like.device, like.dtype), render_id, worker.pid

    def send_backward(self, render_id: int, pid: int, grad_image: torch.Tensor | None, grad_mask: torch.Tensor | None):
        """One ``backward`` request for render ``render_id`` of worker ``pid`` → gradients by field name."""
        worker = self.worker
        if worker.pid != pid:
            raise WorkerError(f"render {render_id} was made by redner worker {pid}, which has stopped since",
                              "render again before calling backward")
        grads = {k: v for k, v in (("image", grad_image), ("mask", grad_mask)) if v is not None}
        _, out = worker.request("backward", {"id": render_id}, grads, "gradients")
        return out


class _WorkerRender(torch.autograd.Function):
    """Autograd node of one worker render: inputs ``(renderer, settings, basis, *RenderInputs tensors)``."""

    @staticmethod
    def forward(ctx: Any, renderer: RednerRenderer, settings: RenderSettings, basis: torch.Tensor, *tensors: torch.Tensor):
        needs = ctx.needs_input_grad[3:]
        grad = [name for name, need, t in zip(ARRAY_FIELDS, needs, tensors) if need and t.is_floating_point()]
        image, mask, render_id, pid = renderer.send_render(settings, basis, tensors, grad)
        ctx.renderer, ctx.render_id, ctx.pid = renderer, render_id, pid
        ctx.like = [(t.dtype, t.device) for t in tensors]
        return image, mask

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_image: torch.Tensor | None, grad_mask: torch.Tensor | None):
        got = ctx.renderer.send_backward(ctx.render_id, ctx.pid, grad_image, grad_mask)
        grads = []
        for name, need, (dtype, device) in zip(ARRAY_FIELDS, ctx.needs_input_grad[3:], ctx.like):
            g = got.get(name) if need else None
            grads.append(None if g is None else g.to(device, dtype))
        return (None, None, None, *grads)


def create_renderer(config: Any, options: RednerOptions | None = None) -> RednerRenderer:
    """Factory of renderer ``redner``: the worker of :func:`worker_options`, started now."""
    options = worker_options(options)
    if options.python is None:
        raise BackendUnavailableError(
            "renderer redner runs in a worker process of a Python 3.8 with redner, and none is configured",
            f"set {ENV_PYTHON}=/path/to/py38/bin/python or [plugins.{SECTION}] python (plugin README: how to make one), "
            f"or use {ALTERNATIVES}",
        )
    return RednerRenderer(options.python, source=options.source, device=options.device,
                          envmap_height=options.envmap_height, startup_timeout=options.startup_timeout)
