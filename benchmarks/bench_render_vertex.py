"""Benchmark ``render_vertex``: milliseconds per differentiable iteration (forward + backward).

The full-size synthetic face (28588 vertices, 56572 triangles, the real BFM counts;
``quick=True``: the small one, 256² only, no variants) with 512² diffuse/specular/roughness
maps and 9-band SH light, gradients on vertices, normals, textures, light and focal (stage 3
of the fit), rendered at 256² and 512² by the compiled kernels (the default CPU path) and by
the PyTorch rasteriser (the fallback and baseline), in the same process, one after the
other. Per resolution:

- ``<res>px_ms`` median (compiled) and ``<res>px_min_ms`` fastest of the timed iterations
  (after two warm-up ones); ``<res>px_forward_ms`` the forward alone;
- ``torch_<res>px_ms``, ``torch_<res>px_forward_ms``: the PyTorch path, and
  ``<res>px_speedup_over_torch`` the ratio of medians;
- ``<res>px_2048maps_ms``: the compiled path with 2048² maps, and
  ``<res>px_2048maps_over_512maps`` (target ≤ 1.2; also as 1-thread CPU time);
- ``baseline_grid_sample_<res>px_ms``: a plain bilinear ``grid_sample`` of one 512² RGB
  texture at every pixel, forward + backward, and ``<res>px_over_grid_sample``;
- ``<res>px_<stage>_ms``: where the compiled path's time goes (one profiled iteration:
  raster = z-buffer, shade = the per-pixel pass, antialias, and their backward passes);
- ``<res>px_1thread_cpu_ms`` and ``torch_<res>px_1thread_cpu_ms``: process CPU time of one
  iteration on one thread (fastest run), and their ratio: the work itself, robust to other
  processes on the cores (wall times on a loaded 2-core machine are not);
- ``peak_rss_mb``: peak RSS of the measuring process (a fresh one that loads only the
  mesh; the model generation runs in the parent), ``rss_before_render_mb`` its RSS after
  importing torch and loading the mesh; ``load_average`` (1 min) at the start and end,
  since the machines are shared and timings vary;
- the targets of the issue (CPU: ≤ 15 ms at 256², ≤ 50 ms at 512², 2048² maps ≤ +20 %,
  RSS < 1 GB) as booleans ``meets_target_*``; on CUDA ``cuda_512px_ms`` (torch path) and
  ``nvdiffrast_512px_ms`` (target ≤ 1 ms).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import torch
from torch.nn import functional as F

TARGET_MS = {256: 15.0, 512: 50.0}
LARGE_MAPS_TARGET = 1.2
#: profiler events of the compiled path: (figure name, event key)
STAGES = (("raster", "vertex.raster"), ("shade", "vertex.shade"), ("antialias", "vertex.antialias"),
          ("shade_backward", "_ShadePixelsBackward"), ("antialias_backward", "_AntialiasBackward"))


def _mesh(size: str) -> dict[str, torch.Tensor]:
    """Camera-space mesh of the synthetic face (posed as in a fit), as plain tensors."""
    from nextface_core.camera import model_to_camera, rotate_normals
    from nextface_core.mesh import vertex_normals
    from nextface_core.synthetic import synthetic_model

    model = synthetic_model(size)
    rotation = torch.tensor([[0.1, 0.3, 0.0]])
    shape = model.shape_mean[None]
    return {
        "vertices": model_to_camera(shape, rotation, torch.tensor([[0.0, 0.0, 600.0]])),
        "normals": rotate_normals(vertex_normals(shape, model.faces), rotation),
        "faces": model.faces.to(torch.int32),
        "uv": model.uv,
    }


def _inputs(mesh: dict[str, torch.Tensor], resolution: int, device: str, bands: int = 9, maps: int = 512) -> tuple[Any, Any]:
    """RenderInputs of ``mesh`` with ``maps``² textures and ``bands`` SH bands, differentiable
    leaves, and the RenderSettings of a ``resolution``² image."""
    from nextface_core.render import RenderInputs, RenderSettings

    generator = torch.Generator().manual_seed(0)
    sh = torch.zeros(1, bands * bands, 3)
    sh[:, 0] = 3.0
    sh[:, 1 : min(9, bands * bands)] = 0.5 * torch.randn(1, min(9, bands * bands) - 1, 3, generator=generator)

    def texture(channels: int, low: float, high: float) -> torch.Tensor:
        t = low + (high - low) * torch.rand(1, maps, maps, channels, generator=generator)
        return t.to(device).requires_grad_()

    inputs = RenderInputs(
        vertices=mesh["vertices"].to(device).requires_grad_(),
        faces=mesh["faces"].to(device),
        normals=mesh["normals"].to(device).requires_grad_(),
        uv=mesh["uv"].to(device),
        diffuse=texture(3, 0.3, 0.8),
        specular=texture(3, 0.0, 0.3),
        roughness=texture(1, 0.2, 0.6),
        sh=sh.to(device).requires_grad_(),
        focal=torch.tensor([resolution * 3.0], device=device, requires_grad=True),
        principal_point=torch.tensor([[resolution / 2, resolution / 2]], device=device),
    )
    return inputs, RenderSettings((resolution, resolution))


def _leaves(inputs: Any) -> list[torch.Tensor]:
    """Everything the benchmark differentiates: geometry, the three maps, light and focal."""
    return [inputs.vertices, inputs.normals, inputs.diffuse, inputs.specular, inputs.roughness, inputs.sh, inputs.focal]


def _time(step: Callable[[], None], repeats: int, device: str, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Milliseconds of ``repeats`` calls after two warm-up calls (``clock``: wall or process CPU time)."""
    times = []
    for i in range(repeats + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        start = clock()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append((clock() - start) * 1000.0)
    return times


def _stage_profile(step: Callable[[], None]) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    totals = {e.key: e.cpu_time_total / 1000.0 for e in prof.key_averages()}
    return {name: totals.get(key, 0.0) for name, key in STAGES}


def _step(renderer: Any, inputs: Any, settings: Any, weights: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        out = renderer.render(inputs, settings)
        loss = (out.image * weights).sum() + out.mask.sum()
        grads = torch.autograd.grad(loss, _leaves(inputs))
        assert all(g is not None for g in grads)

    return step


def _bench_resolution(mesh: dict[str, torch.Tensor], resolution: int, repeats: int, quick: bool) -> dict[str, object]:
    """Compiled vs PyTorch path on the CPU at one resolution (see the module docstring)."""
    from nextface_render_vertex import VertexRenderer

    inputs, settings = _inputs(mesh, resolution, "cpu")
    fast = VertexRenderer(use_nvdiffrast="never", kernels="compiled")
    slow = VertexRenderer(use_nvdiffrast="never", kernels="torch")
    weights = torch.rand(1, resolution, resolution, 3, generator=torch.Generator().manual_seed(1))

    def forward(renderer: Any) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                renderer.render(inputs, settings)

        return run

    texture = inputs.diffuse.detach().permute(0, 3, 1, 2).contiguous().requires_grad_()
    grid = torch.rand(1, resolution, resolution, 2, generator=torch.Generator().manual_seed(2)) * 2 - 1

    def baseline() -> None:
        sampled = F.grid_sample(texture, grid, mode="bilinear", align_corners=False)
        torch.autograd.grad((sampled * weights.permute(0, 3, 1, 2)).sum(), texture)

    tag = f"{resolution}px"
    times = _time(_step(fast, inputs, settings, weights), repeats, "cpu")
    torch_times = _time(_step(slow, inputs, settings, weights), repeats, "cpu")
    base = _time(baseline, repeats, "cpu")
    median, torch_median = statistics.median(times), statistics.median(torch_times)
    figures: dict[str, object] = {
        f"{tag}_ms": round(median, 1),
        f"{tag}_min_ms": round(min(times), 1),
        f"{tag}_forward_ms": round(statistics.median(_time(forward(fast), repeats, "cpu")), 1),
        f"torch_{tag}_ms": round(torch_median, 1),
        f"torch_{tag}_forward_ms": round(statistics.median(_time(forward(slow), repeats, "cpu")), 1),
        f"{tag}_speedup_over_torch": round(torch_median / median, 2),
        f"baseline_grid_sample_{tag}_ms": round(statistics.median(base), 2),
        f"{tag}_over_grid_sample": round(median / statistics.median(base), 1),
    }
    with torch.no_grad():
        figures[f"{tag}_covered_pixels"] = int(fast.render(inputs, settings).mask.gt(0.5).sum())
    figures[f"meets_target_{tag}"] = median <= TARGET_MS[resolution]
    if quick:
        return figures
    figures.update({f"{tag}_{k}_ms": round(v, 1) for k, v in _stage_profile(_step(fast, inputs, settings, weights)).items()})
    large, _ = _inputs(mesh, resolution, "cpu", maps=2048)
    large_median = statistics.median(_time(_step(fast, large, settings, weights), repeats, "cpu"))
    figures[f"{tag}_2048maps_ms"] = round(large_median, 1)
    figures[f"{tag}_2048maps_over_512maps"] = round(large_median / median, 2)
    figures[f"meets_target_{tag}_2048maps"] = large_median <= LARGE_MAPS_TARGET * median
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu = _time(_step(fast, inputs, settings, weights), repeats, "cpu", clock=time.process_time)
        large_cpu = _time(_step(fast, large, settings, weights), repeats, "cpu", clock=time.process_time)
        figures[f"{tag}_2048maps_1thread_cpu_ms"] = round(min(large_cpu), 1)
        figures[f"{tag}_2048maps_over_512maps_1thread_cpu"] = round(min(large_cpu) / min(cpu), 2)
        torch_cpu = _time(_step(slow, inputs, settings, weights), repeats, "cpu", clock=time.process_time)
        figures[f"{tag}_1thread_cpu_ms"] = round(min(cpu), 1)
        figures[f"torch_{tag}_1thread_cpu_ms"] = round(min(torch_cpu), 1)
        figures[f"{tag}_1thread_cpu_speedup_over_torch"] = round(min(torch_cpu) / min(cpu), 2)
    finally:
        torch.set_num_threads(threads)
    del large
    return figures


def _bench_cuda(mesh: dict[str, torch.Tensor], repeats: int, use_nvdiffrast: str) -> dict[str, object]:
    """512² on CUDA: the PyTorch path, or nvdiffrast (never run on the development machines)."""
    from nextface_render_vertex import VertexRenderer

    inputs, settings = _inputs(mesh, 512, "cuda")
    weights = torch.rand(1, 512, 512, 3, generator=torch.Generator().manual_seed(1)).to("cuda")
    renderer = VertexRenderer(use_nvdiffrast=use_nvdiffrast)
    median = statistics.median(_time(_step(renderer, inputs, settings, weights), repeats, "cuda"))
    return {f"{'nvdiffrast' if use_nvdiffrast == 'always' else 'cuda'}_512px_ms": round(median, 2)}


def _child(path: str, quick: bool) -> dict[str, object]:
    """The measuring process: loads the mesh (tensors only), renders, reports its own peak RSS."""
    from nextface_render_vertex import nvdiffrast_backend

    mesh = torch.load(path, weights_only=True)
    repeats = 2 if quick else 7
    figures: dict[str, object] = {"rss_before_render_mb": round(_peak_rss_mb(), 1)}
    for resolution in (256,) if quick else (256, 512):
        figures.update(_bench_resolution(mesh, resolution, repeats, quick))
    figures["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    figures["meets_target_rss"] = _peak_rss_mb() < 1024.0
    if torch.cuda.is_available():
        figures.update(_bench_cuda(mesh, repeats, "never"))
        if nvdiffrast_backend.available():
            figures.update(_bench_cuda(mesh, repeats, "always"))
    return figures


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(quick: bool = False) -> dict[str, object]:
    """Generate the mesh here, measure in a fresh process (so its peak RSS is the renderer's)."""
    size = "small" if quick else "full"
    figures: dict[str, object] = {
        "mesh": size,
        "threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count() or 0,
    }
    mesh = _mesh(size)
    figures["vertices"], figures["triangles"] = mesh["vertices"].shape[1], mesh["faces"].shape[0]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mesh.pt")
        torch.save(mesh, path)
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", path, "quick" if quick else "full"],
            capture_output=True, text=True,
        )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark process failed: {done.stderr.strip().splitlines()[-1:]}")
    figures.update(json.loads(done.stdout.strip().splitlines()[-1]))
    figures["load_average_end"] = round(os.getloadavg()[0], 2)
    return figures


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--child":
    print(json.dumps(_child(sys.argv[2], sys.argv[3] == "quick")))
