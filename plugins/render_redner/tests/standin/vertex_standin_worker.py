"""STAND-IN for the redner worker, for tests only (redner cannot be installed on this Python).

It runs the real worker loop and protocol (:func:`nextface_redner_worker.run_worker`, started
with ``python -m vertex_standin_worker`` exactly as the real one), but its back end renders
with NextFace's ``vertex`` renderer in this Python instead of redner, so the bridge's images
and gradients can be compared with the vertex renderer called directly.

Test knobs (environment): ``NEXTFACE_STANDIN_PIDFILE`` — write this process's pid there;
``NEXTFACE_STANDIN_PROTOCOL`` — frame messages with that protocol version (a mismatch test);
``NEXTFACE_STANDIN_THREADS`` — torch threads (the parent's, for bit-identical kernels).
"""

from __future__ import annotations

import os
import sys

import torch

import nextface_redner_wire as wire
from nextface_redner_worker import run_worker


class VertexStandInBackend:
    """The worker back-end interface, answered by :class:`nextface_render_vertex.VertexRenderer`."""

    name = "vertex-stand-in"
    device = "cpu"

    def __init__(self) -> None:
        from nextface_core import __version__
        from nextface_render_vertex import VertexRenderer

        self.version = __version__
        self.renderer = VertexRenderer(use_nvdiffrast="never")
        print(f"vertex stand-in worker {os.getpid()} ready", file=sys.stderr, flush=True)

    def render(self, arrays, settings: wire.Settings):
        from nextface_core.render import RenderInputs, RenderSettings

        fields = {k: v for k, v in arrays.items() if k != "envmap_basis"}
        out = self.renderer.render(RenderInputs(**fields), RenderSettings(**settings._asdict()))
        return out.image, out.mask


if __name__ == "__main__":
    if os.environ.get("NEXTFACE_STANDIN_PIDFILE"):
        with open(os.environ["NEXTFACE_STANDIN_PIDFILE"], "w") as f:
            f.write(str(os.getpid()))
    if os.environ.get("NEXTFACE_STANDIN_PROTOCOL"):
        wire.VERSION = int(os.environ["NEXTFACE_STANDIN_PROTOCOL"])
    if os.environ.get("NEXTFACE_STANDIN_THREADS"):
        torch.set_num_threads(int(os.environ["NEXTFACE_STANDIN_THREADS"]))
    sys.exit(run_worker(lambda args: VertexStandInBackend()))
