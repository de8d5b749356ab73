"""Benchmark ``render_redner``'s worker bridge: what the process boundary costs per iteration.

One differentiable iteration (forward + backward, gradients on vertices, normals, the three
textures, SH light and focal: stage 3 of the fit) of the full-size synthetic face (28588
vertices, 56572 triangles) with 512² maps and 9-band light at 256² (``quick=True``: the small
face, 64 px), in the same run:

- ``direct_ms``: the ``vertex`` renderer called in this process (the baseline);
- ``bridge_ms``: the same render through the redner bridge on the vertex STAND-IN worker
  (``plugins/render_redner/tests/standin``: the real worker loop and pipe protocol, rendering
  with the vertex renderer), so the difference is the transport alone;
- ``overhead_ms`` = bridge − direct, ``bridge_over_direct``;
- ``transport_ms``: per iteration, the two round trips' wall time minus the time the worker
  reports spending in its back end (``worker_s`` of each reply): the transport measured
  directly, robust to the render's own noise on a shared machine;
- ``mb_per_iteration``: the bytes the four messages of one iteration carry (render,
  rendered, backward, gradients);
- ``startup_s``: starting the worker (interpreter, torch, the back end) until its hello;
- where ``NEXTFACE_REDNER_PYTHON`` points to a working redner environment, ``redner_ms`` and
  ``redner_transport_ms``: the same iteration through real redner (8 samples per pixel, the
  fit's default), and ``transport_over_redner``;
- ``load_average`` (1 min) at the start: the machines are shared.

One torch thread in both processes (``threads``; stable figures on shared cores). Medians of
interleaved iterations after two warm-up ones.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

STANDIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "render_redner" / "tests" / "standin"
GRADS = ("vertices", "normals", "diffuse", "specular", "roughness", "sh", "focal")


def _inputs(quick: bool):
    import torch

    from nextface_core.camera import model_to_camera, rotate_normals
    from nextface_core.mesh import vertex_normals
    from nextface_core.render import RenderInputs, RenderSettings
    from nextface_core.synthetic import synthetic_model

    model = synthetic_model("small" if quick else "full")
    size, tex = (64, 64) if quick else (256, 512)
    rotation = torch.tensor([[0.1, 0.3, 0.0]])
    shape = model.shape_mean[None]
    g = torch.Generator().manual_seed(0)
    inputs = RenderInputs(
        vertices=model_to_camera(shape, rotation, torch.tensor([[0.0, 0.0, 600.0]])),
        faces=model.faces.to(torch.int32),
        normals=rotate_normals(vertex_normals(shape, model.faces), rotation),
        uv=model.uv,
        diffuse=torch.rand(1, tex, tex, 3, generator=g),
        specular=0.2 * torch.rand(1, tex, tex, 3, generator=g),
        roughness=0.3 + 0.4 * torch.rand(1, tex, tex, 1, generator=g),
        sh=torch.randn(1, 81, 3, generator=g) * 0.1 + torch.tensor([2.0] + [0.0] * 80)[None, :, None],
        focal=torch.tensor([size * 4.0]),
        principal_point=torch.tensor([[size / 2.0, size / 2.0]]),
    )
    return inputs, RenderSettings((size, size))


def _iteration(renderer, inputs, settings) -> float:
    import torch

    leaves = {n: getattr(inputs, n).detach().clone().requires_grad_(True) for n in GRADS}
    t0 = time.perf_counter()
    out = renderer.render(replace(inputs, **leaves), settings)
    (out.image.sum() + out.mask.sum()).backward()
    elapsed = (time.perf_counter() - t0) * 1000.0
    assert all(torch.isfinite(leaves[n].grad).all() for n in ("vertices", "diffuse", "sh"))
    return elapsed


def _nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def run(quick: bool = False) -> dict[str, object]:
    import os

    import torch

    from nextface_render_redner.renderer import ARRAY_FIELDS, RednerRenderer
    from nextface_render_vertex import VertexRenderer

    load = os.getloadavg()[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ["NEXTFACE_STANDIN_THREADS"] = "1"
    inputs, settings = _inputs(quick)
    direct = VertexRenderer(use_nvdiffrast="never")
    t0 = time.perf_counter()
    bridge = RednerRenderer(sys.executable, module="vertex_standin_worker", pythonpath=[STANDIN_DIR])
    startup = time.perf_counter() - t0
    try:
        repeats = 3 if quick else 10
        times: dict[str, list[float]] = {"direct": [], "bridge": [], "transport": []}
        for i in range(repeats + 2):
            for name, renderer in (("direct", direct), ("bridge", bridge)):
                before = bridge.worker.transport_s
                ms = _iteration(renderer, inputs, settings)
                if i >= 2:
                    times[name].append(ms)
                    if name == "bridge":
                        times["transport"].append((bridge.worker.transport_s - before) * 1000.0)
        if os.environ.get("NEXTFACE_REDNER_PYTHON"):
            with RednerRenderer(os.environ["NEXTFACE_REDNER_PYTHON"]) as redner:
                sampled = replace(settings, samples=8)
                _iteration(redner, inputs, sampled)
                runs = []
                for _ in range(3 if quick else 5):
                    before = redner.worker.transport_s
                    runs.append((_iteration(redner, inputs, sampled), (redner.worker.transport_s - before) * 1000.0))
                times["redner"] = [r[0] for r in runs]
                times["redner_transport"] = [r[1] for r in runs]
    finally:
        bridge.close()
        torch.set_num_threads(threads)
        os.environ.pop("NEXTFACE_STANDIN_THREADS", None)
    direct_ms, bridge_ms = statistics.median(times["direct"]), statistics.median(times["bridge"])
    h, w = settings.image_size
    image_bytes = h * w * 4 * 4  # image + mask, float32
    inputs_bytes = _nbytes(*(getattr(inputs, n) for n in ARRAY_FIELDS))
    grads_bytes = _nbytes(*(getattr(inputs, n) for n in GRADS))
    return {
        "image_px": h,
        "vertices": inputs.vertices.shape[1],
        "texture_px": inputs.diffuse.shape[1],
        "threads": 1,
        "direct_ms": round(direct_ms, 1),
        "bridge_ms": round(bridge_ms, 1),
        "overhead_ms": round(bridge_ms - direct_ms, 1),
        "bridge_over_direct": round(bridge_ms / direct_ms, 3),
        "transport_ms": round(statistics.median(times["transport"]), 1),
        "mb_per_iteration": round((inputs_bytes + 2 * image_bytes + grads_bytes) / 2**20, 1),
        "startup_s": round(startup, 2),
        **({
            "redner_ms": round(statistics.median(times["redner"]), 1),
            "redner_transport_ms": round(statistics.median(times["redner_transport"]), 1),
            "transport_over_redner": round(statistics.median(times["redner_transport"]) / statistics.median(times["redner"]), 3),
        } if "redner" in times else {}),
        "load_average": round(load, 2),
    }


if __name__ == "__main__":
    for key, value in run("--quick" in sys.argv).items():
        print(f"{key:>20}  {value}")
