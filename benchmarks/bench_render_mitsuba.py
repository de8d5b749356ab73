"""Benchmark ``render_mitsuba``: milliseconds per differentiable iteration (forward + backward).

The full-size synthetic face (28588 vertices, 56572 triangles, the real BFM counts;
``quick=True``: the small one) with 256² per-texel diffuse/specular/roughness maps and 9-band
SH light, all with gradients on (vertices, normals, textures, light, focal), as in stage 3.
Measured on the device the run uses (CPU → ``llvm_ad_rgb``; CUDA when available →
``cuda_ad_rgb`` too), in the same run:

- ``mitsuba_<res>px_<spp>spp_ms``: median of the timed iterations after two warm-up
  iterations (the first compiles the kernels: ``first_iteration_s``), and ``..._best_ms``, the
  fastest one (the steadier figure on a shared, loaded machine);
- ``baseline_vertex_<res>px_ms``: the ``vertex`` renderer (rasteriser) on the same inputs,
  and ``mitsuba_over_vertex_<res>px_<spp>spp``, the ratio;
- the same for ``shadow_gradients = "off"`` at the first resolution, to show the cost of the
  shadow-edge term.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

import torch


def _inputs(size: str, resolution: int, device: str) -> tuple[Any, Any]:
    """RenderInputs of a ``size`` synthetic face and RenderSettings of ``resolution``² at 4 spp."""
    from nextface_core.camera import model_to_camera, rotate_normals
    from nextface_core.mesh import vertex_normals
    from nextface_core.render import RenderInputs, RenderSettings
    from nextface_core.synthetic import synthetic_model

    model = synthetic_model(size, device=device)
    rotation = torch.tensor([[0.1, 0.3, 0.0]], device=device)
    translation = torch.tensor([[0.0, 0.0, 600.0]], device=device)
    shape = model.shape_mean[None]
    generator = torch.Generator().manual_seed(0)
    sh = torch.zeros(1, 81, 3)
    sh[:, 0] = 3.0
    sh[:, 1:9] = 0.5 * torch.randn(1, 8, 3, generator=generator)

    def texture(channels: int, low: float, high: float) -> torch.Tensor:
        return (low + (high - low) * torch.rand(1, 256, 256, channels, generator=generator)).to(device)

    inputs = RenderInputs(
        vertices=model_to_camera(shape, rotation, translation),
        faces=model.faces.to(torch.int32),
        normals=rotate_normals(vertex_normals(shape, model.faces), rotation),
        uv=model.uv,
        diffuse=texture(3, 0.3, 0.8),
        specular=texture(3, 0.0, 0.3),
        roughness=texture(1, 0.2, 0.6),
        sh=sh.to(device),
        focal=torch.tensor([resolution * 3.0], device=device),
        principal_point=torch.tensor([[resolution / 2, resolution / 2]], device=device),
    )
    return inputs, RenderSettings((resolution, resolution), samples=4)


def _iteration(renderer: Any, inputs: Any, settings: Any, seed: int) -> None:
    """One differentiable iteration: every input the fit optimises gets a gradient."""
    leaves = {
        name: getattr(inputs, name).detach().clone().requires_grad_(True)
        for name in ("vertices", "normals", "diffuse", "specular", "roughness", "sh", "focal")
    }
    out = renderer.render(dataclasses.replace(inputs, **leaves), dataclasses.replace(settings, seed=seed))
    (out.image.mean() + out.mask.mean()).backward()
    if inputs.vertices.is_cuda:
        torch.cuda.synchronize()


def _time(renderer: Any, inputs: Any, settings: Any, repeats: int) -> tuple[float, float, float]:
    """(first iteration in s, median and best of ``repeats`` later ones in ms)."""
    start = time.perf_counter()
    _iteration(renderer, inputs, settings, 0)
    first = time.perf_counter() - start
    _iteration(renderer, inputs, settings, 1)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        _iteration(renderer, inputs, settings, 2 + i)
        times.append((time.perf_counter() - start) * 1000.0)
    return first, statistics.median(times), min(times)


def run(quick: bool = False) -> dict[str, object]:
    from nextface_core.config import load_config
    from nextface_core.errors import NextFaceError
    from nextface_core.plugins import PluginRegistry
    from nextface_render_mitsuba.renderer import MitsubaRenderer

    size = "small" if quick else "full"
    resolutions = (64,) if quick else (128, 256)
    sample_counts = (4,) if quick else (4, 8)
    repeats = 2 if quick else 5
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    try:
        vertex = PluginRegistry(env={}).create("renderer", "vertex", load_config(None))
    except NextFaceError as exc:
        vertex, vertex_error = None, str(exc)
    result: dict[str, object] = {"mesh": f"synthetic-{size}", "texture": "256²", "sh_bands": 9, "threads": torch.get_num_threads()}
    for device in devices:
        prefix = "" if device == "cpu" else "cuda_"
        mitsuba = MitsubaRenderer()
        for resolution in resolutions:
            inputs, settings = _inputs(size, resolution, device)
            result[f"{prefix}triangles"] = int(inputs.faces.shape[0])
            baseline = _time(vertex, inputs, settings, repeats)[1:] if vertex is not None else None
            if baseline is not None:
                result[f"{prefix}baseline_vertex_{resolution}px_ms"] = round(baseline[0], 1)
                result[f"{prefix}baseline_vertex_{resolution}px_best_ms"] = round(baseline[1], 1)
            for spp in sample_counts:
                first, ms, best = _time(mitsuba, inputs, dataclasses.replace(settings, samples=spp), repeats)
                key = f"{prefix}mitsuba_{resolution}px_{spp}spp"
                result[f"{key}_ms"] = round(ms, 1)
                result[f"{key}_best_ms"] = round(best, 1)
                result[f"{key}_first_iteration_s"] = round(first, 2)
                if baseline is not None:
                    result[f"{prefix}mitsuba_over_vertex_{resolution}px_{spp}spp"] = round(ms / baseline[0], 1)
                    result[f"{prefix}mitsuba_over_vertex_{resolution}px_{spp}spp_best"] = round(best / baseline[1], 1)
        no_shadow = MitsubaRenderer(shadow_gradients="off")
        inputs, settings = _inputs(size, resolutions[0], device)
        _, ms, best = _time(no_shadow, inputs, dataclasses.replace(settings, samples=sample_counts[0]), repeats)
        result[f"{prefix}mitsuba_{resolutions[0]}px_{sample_counts[0]}spp_shadow_gradients_off_ms"] = round(ms, 1)
        result[f"{prefix}mitsuba_{resolutions[0]}px_{sample_counts[0]}spp_shadow_gradients_off_best_ms"] = round(best, 1)
        mitsuba.release()
        no_shadow.release()
    if vertex is None:
        result["baseline"] = f"vertex renderer unavailable: {vertex_error}"
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
