"""The redner worker: ``python -m nextface_redner_worker [--device auto|cpu|cuda]``.

Runs in its own interpreter (Python 3.8 with torch and redner or redner-gpu; no NextFace
import) and serves the protocol of :mod:`nextface_redner_wire` on its stdin/stdout: it says
``hello``, then renders and back-propagates until ``quit`` or until its stdin closes.

Its lifetime is tied to the process that started it: it ignores SIGINT (a Ctrl-C goes to the
fit, which then stops the worker in order), it exits when its stdin closes, and a watchdog
thread and, on Linux, the kernel's parent-death signal exit it when its parent process is
gone, so a killed fit leaves no orphan. The protocol owns fd 1: anything printed (pyredner's
timing lines, C++ warnings) is sent to stderr instead, which the plugin keeps the last lines
of for its error messages.

:func:`run_worker` is the loop for any back end with ``name``, ``version``, ``device`` and
``render(arrays, settings: nextface_redner_wire.Settings) -> (image [B,H,W,3], mask [B,H,W,1])``;
:class:`RednerBackend` is the one this module runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import threading
import time
import traceback
from collections import OrderedDict
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Tuple

try:  # imported by the plugin as nextface_render_redner.worker.nextface_redner_worker
    from . import nextface_redner_wire as wire
except ImportError:  # run as the worker: this folder is the whole PYTHONPATH
    import nextface_redner_wire as wire  # type: ignore[no-redef]

#: the oldest redner the conversions were written against
MIN_REDNER = (0, 4, 28)
#: render graphs kept for a later backward (oldest dropped first)
KEEP_GRAPHS = 4
DISTRIBUTIONS = ("redner-gpu", "redner")


class BackendMissing(Exception):
    """The back end cannot run in this interpreter: ``message`` and ``fix`` go into ``hello``."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message, self.fix = message, fix


def version_tuple(version: str) -> Tuple[int, ...]:
    """``"0.4.28"`` → ``(0, 4, 28)``; non-numeric parts stop the tuple (``"1.0rc1"`` → ``(1, 0)``)."""
    out = []
    for part in version.split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(out)


def check_redner_version(version: str) -> Optional[str]:
    """An error message when ``version`` is older than :data:`MIN_REDNER`, else None."""
    if version_tuple(version) < MIN_REDNER:
        need = ".".join(str(v) for v in MIN_REDNER)
        return "redner {} is older than {}, which this plugin's conversions were written for".format(version, need)
    return None


class RednerBackend:
    """pyredner behind the worker loop: one scene per image, direct lighting, alpha as the mask."""

    name = "redner"

    def __init__(self, device: str = "auto") -> None:
        exe = sys.executable
        try:
            import torch
            import pyredner
        except ImportError as exc:
            raise BackendMissing(
                "{} in {} (Python {})".format(exc, exe, platform.python_version()),
                "install redner into that interpreter: {} -m pip install 'numpy<2' torch redner "
                "(or redner-gpu; wheels exist for Python 3.6-3.8 only)".format(exe),
            )
        from importlib import metadata

        dist, version = "", ""
        for dist in DISTRIBUTIONS:
            try:
                version = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        old = check_redner_version(version or "0")
        if old:
            raise BackendMissing("{} ({})".format(old, exe), "{} -m pip install -U 'redner>=0.4.28'".format(exe))
        gpu_build = dist == "redner-gpu"
        if device == "auto":
            device = "cuda" if gpu_build and torch.cuda.is_available() else "cpu"
        if device == "cuda" and not (gpu_build and torch.cuda.is_available()):
            why = "no CUDA device is visible to torch" if gpu_build else "the installed redner is the CPU build"
            raise BackendMissing(
                "[plugins.render_redner] device = \"cuda\" but {} ({})".format(why, exe),
                "install redner-gpu on a machine with a CUDA GPU, or set device = \"cpu\"",
            )
        pyredner.set_use_gpu(device == "cuda")
        pyredner.set_print_timing(False)
        try:
            from . import nextface_redner_scene as scene
        except ImportError:
            import nextface_redner_scene as scene  # type: ignore[no-redef]
        self.pyredner, self.torch, self.scene = pyredner, torch, scene
        self.version, self.device = version, device

    def render(self, arrays: Dict[str, Any], settings: wire.Settings):
        pyredner, torch, scene = self.pyredner, self.torch, self.scene
        mode = settings.mode
        arrays = {k: (v.float() if v.is_floating_point() else v) for k, v in arrays.items()}  # redner is float32 only
        pyscenes = []
        for d in scene.scene_dicts(arrays, settings.image_size, mode):
            cam, mesh, mat, env = d["camera"], d["mesh"], d["material"], d["envmap"]
            camera = pyredner.Camera(
                cam_to_world=cam["cam_to_world"], intrinsic_mat=cam["intrinsic_mat"].cpu(),
                resolution=cam["resolution"], clip_near=1e-3,
            )
            material = pyredner.Material(
                diffuse_reflectance=pyredner.Texture(mat["diffuse"].contiguous()),
                specular_reflectance=pyredner.Texture(mat["specular"].contiguous()),
                roughness=pyredner.Texture(mat["roughness"].contiguous()),
            )
            obj = pyredner.Object(
                vertices=mesh["vertices"].contiguous(), indices=mesh["indices"].contiguous(), material=material,
                uvs=mesh["uvs"].contiguous(), normals=mesh["normals"].contiguous(),
            )
            envmap = pyredner.EnvironmentMap(
                pyredner.Texture(env["values"].contiguous()), env_to_world=env["env_to_world"], directly_visible=False
            )
            pyscenes.append(pyredner.Scene(camera=camera, objects=[obj], envmap=envmap))
        colour = pyredner.channels.diffuse_reflectance if mode == "albedo" else pyredner.channels.radiance
        # albedo: a G-buffer render (no bounces); with max_bounces = 1 redner 0.4.28 adds radiance
        # into the diffuse_reflectance/alpha outputs (seen: diffuse (.2,.5,.8) came back (.49,.96,.8), alpha 1.12)
        bounces = 0 if mode == "albedo" else 1
        out = pyredner.render_generic(
            pyscenes, channels=[colour, pyredner.channels.alpha], max_bounces=bounces, num_samples=settings.samples,
            seed=[settings.seed] * len(pyscenes), device=torch.device(self.device),
        )
        return out[..., :3], out[..., 3:4]


def _serve(backend: Any, stream_in: BinaryIO, stream_out: BinaryIO) -> int:
    """Answer requests until ``quit`` or the end of ``stream_in``; returns the exit code."""
    graphs = OrderedDict()  # type: OrderedDict[int, Tuple[Dict[str, Any], Tuple[Any, Any]]]
    while True:
        try:
            op, fields, arrays = wire.read_message(stream_in)
        except wire.PeerClosed:
            return 0
        except wire.ProtocolError as exc:
            wire.write_message(stream_out, "error", {"message": "protocol error: {}".format(exc), "traceback": ""})
            return 2
        if op == "quit":
            return 0
        try:
            start = time.perf_counter()
            if op == "render":
                image, mask = _render(backend, fields, arrays, graphs)
                done = {"id": fields["id"], "worker_s": time.perf_counter() - start}
                wire.write_message(stream_out, "rendered", done, {"image": image, "mask": mask})
            elif op == "backward":
                grads = _backward(fields["id"], arrays, graphs)
                done = {"id": fields["id"], "worker_s": time.perf_counter() - start}
                wire.write_message(stream_out, "gradients", done, grads)
            else:
                raise ValueError("unknown op {!r}".format(op))
        except Exception as exc:  # reported to the plugin; the worker stays up for the next request
            text = traceback.format_exc()
            sys.stderr.write(text)
            wire.write_message(stream_out, "error", {"message": "{}: {}".format(type(exc).__name__, exc), "traceback": text})


def _render(backend: Any, fields: Dict[str, Any], arrays: Dict[str, Any], graphs: "OrderedDict") -> Tuple[Any, Any]:
    import torch

    wanted = list(fields.get("grad", []))
    device = torch.device(backend.device)
    leaves = {}
    for name, t in list(arrays.items()):
        t = t.to(device)
        if name in wanted:
            leaves[name] = t.requires_grad_(True)
        arrays[name] = t
    with torch.set_grad_enabled(bool(leaves)):
        image, mask = backend.render(arrays, wire.Settings.from_fields(fields))
    if leaves:
        graphs[int(fields["id"])] = (leaves, (image, mask))
        while len(graphs) > KEEP_GRAPHS:
            graphs.popitem(last=False)
    return image.detach(), mask.detach()


def _backward(graph_id: int, arrays: Dict[str, Any], graphs: "OrderedDict") -> Dict[str, Any]:
    import torch

    if graph_id not in graphs:
        raise KeyError("render {} has no graph here (the worker keeps the last {} renders that need gradients)".format(graph_id, KEEP_GRAPHS))
    leaves, outputs = graphs.pop(graph_id)
    pairs = [(out, arrays[name].to(out.device, out.dtype)) for name, out in zip(("image", "mask"), outputs)
             if name in arrays and out.requires_grad]
    if pairs:
        torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])
    return {name: leaf.grad for name, leaf in leaves.items() if leaf.grad is not None}


def _poll_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _die_with_parent() -> None:
    """Exit when the process that started us goes. On Linux the kernel sends SIGKILL
    (``PR_SET_PDEATHSIG``), which works mid-render too, when pyredner holds the GIL; everywhere a
    watchdog thread also polls the parent pid (``NEXTFACE_REDNER_PARENT``, set by the plugin)."""
    parent = int(os.environ.get("NEXTFACE_REDNER_PARENT") or os.getppid())
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it went before the line above
        os._exit(0)
    threading.Thread(target=_poll_parent, args=(parent,), daemon=True).start()


def run_worker(make_backend: Callable[[argparse.Namespace], Any], argv: Optional[List[str]] = None) -> int:
    """Main of a worker: take fd 1 for the protocol, say ``hello``, serve. Returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m nextface_redner_worker")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stream_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    stream_in = sys.stdin.buffer
    _die_with_parent()
    info = {"python": platform.python_version(), "executable": sys.executable, "pid": os.getpid()}
    try:
        import torch

        info["torch"] = torch.__version__
        backend = make_backend(args)
    except BackendMissing as exc:
        wire.write_message(stream_out, "hello", dict(info, ok=False, error=exc.message, fix=exc.fix))
        return 3
    except ImportError as exc:
        fix = "install torch into that interpreter: {} -m pip install torch".format(sys.executable)
        wire.write_message(stream_out, "hello", dict(info, ok=False, error="{} in {}".format(exc, sys.executable), fix=fix))
        return 3
    info.update(ok=True, backend=backend.name, backend_version=backend.version, device=backend.device)
    wire.write_message(stream_out, "hello", info)
    return _serve(backend, stream_in, stream_out)


if __name__ == "__main__":
    sys.exit(run_worker(lambda args: RednerBackend(args.device)))
