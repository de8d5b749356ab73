"""Benchmark ``track``: frames per second of video tracking once the identity is known.

A synthetic clip rendered from the full-size synthetic model (28588 vertices, 56572
triangles, the real BFM counts; ``quick=True``: the small model, fewer frames) at 256² with
a known pose/expression trajectory, tracked with the true identity, the vertex renderer
and the default ``[track]`` settings (Gauss-Newton landmark steps + 1 photometric
iteration per frame) on the CPU. Landmarks are the exact projections (MediaPipe does not
find synthetic faces), so the tracking figures exclude detection; MediaPipe's own cost in
its tracking mode is measured separately on the astronaut photo moved across frames.

Figures, in the same run:

- ``fps_256px`` tracked frames per second (1 / median seconds per frame), ``ms_per_frame``
  median and ``mean_ms_per_frame``; ``meets_target_5fps`` (one torch thread, the
  ``track.threads`` default), and ``fps_256px_N_threads`` with torch's default N threads
  (on a busy shared machine, much slower: the threads wait for each other);
- ``cpu_fps_256px`` / ``cpu_ms_per_frame``: the same from the process's CPU time per frame
  (median) — what one otherwise idle core gives, since wall times on a shared machine
  include waiting for the CPU;
- ``landmarks_only_fps_256px`` / ``landmarks_only_cpu_fps_256px``: the same with no
  photometric iteration (the baseline), and ``photometric_share_cpu`` of the CPU time per
  frame spent in the photometric refinement;
- ``max_rotation_error_deg``, ``max_expression_error_sd`` against the true trajectory;
- ``mediapipe_tracking_ms`` / ``mediapipe_static_ms`` per 256² frame and their ratio, and
  ``fps_with_mediapipe_256px`` (tracking + detection, one core each in sequence);
- on a CUDA machine ``cuda_fps_512px`` (the same clip at 512², vertex renderer on the GPU);
- ``load_average`` (1 min) at the start: the machines are shared and timings vary.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any


def _track_seconds(clip, model, renderer, config, overrides: dict[str, Any]) -> tuple[Any, float, float, float]:
    """Track ``clip``; the result, the median and mean wall seconds and the median CPU
    seconds per frame after the first (frame 0 starts from a closed-form pose with more
    iterations)."""
    from nextface_core.tracking import track_frames

    cfg = config.with_overrides(overrides)
    result = track_frames(lambda: iter(clip.frames), cfg, model=model, renderer=renderer, identity=clip.identity,
                          landmarks=clip.landmarks)
    per_frame = result.seconds[1:]
    return result, statistics.median(per_frame), float(per_frame.mean()), statistics.median(result.cpu_seconds[1:])


def _mediapipe(frames: int) -> dict[str, float]:
    import numpy as np
    from skimage.data import astronaut

    from nextface_core.config import load_config
    from nextface_core.plugins import PluginRegistry

    registry = PluginRegistry()
    if not registry.resolve("detector", "mediapipe").availability().ok:
        return {}
    photo = astronaut()[:256, 64:320]
    clip = [np.ascontiguousarray(np.roll(photo, 3 * i, axis=1)) for i in range(frames)]
    out = {}
    for mode, tracking in (("tracking", True), ("static", False)):
        cfg = load_config(overrides={"plugins.landmarks_mediapipe": {"tracking": tracking}})
        detector = registry.create("detector", "mediapipe", cfg)
        detector.detect(clip[:1], ["warm-up"])
        t0 = time.perf_counter()
        for i, frame in enumerate(clip):
            detector.detect([frame], [f"frame{i}"])
        out[f"mediapipe_{mode}_ms"] = (time.perf_counter() - t0) / len(clip) * 1000.0
        detector.close()
    out["mediapipe_tracking_over_static"] = out["mediapipe_tracking_ms"] / out["mediapipe_static_ms"]
    return out


def run(quick: bool = False) -> dict[str, object]:
    import torch

    from nextface_core.camera import axis_angle_to_matrix
    from nextface_core.config import load_config
    from nextface_core.plugins import PluginRegistry
    from nextface_core.synthetic import synthetic_model
    from nextface_core.synthetic.clip import synthetic_clip

    figures: dict[str, object] = {"load_average": round(os.getloadavg()[0], 2)}
    size, count = (96, 6) if quick else (256, 24)
    config = load_config(overrides={"run.device": "cpu"})
    registry = PluginRegistry()
    renderer = registry.create("renderer", "vertex", config)
    model = synthetic_model("small" if quick else "full")
    figures["vertices"] = int(model.shape_mean.shape[0])

    config = config.with_overrides({"track.resolution": size})
    clip = synthetic_clip(model, renderer, config, count=count, size=size)
    result, median, mean, cpu = _track_seconds(clip, model, renderer, config, {})
    _, lm_median, _, lm_cpu = _track_seconds(clip, model, renderer, config, {"track.photometric_iterations": 0})
    threads = torch.get_num_threads()
    _, all_median, _, _ = _track_seconds(clip, model, renderer, config, {"track.threads": 0})
    r = axis_angle_to_matrix(result.rotation.double()) @ axis_angle_to_matrix(clip.truth.rotation.double()).transpose(-1, -2)
    cos = ((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    figures.update({
        "frames": count,
        f"fps_{size}px": round(1.0 / median, 2),
        "ms_per_frame": round(median * 1000.0, 1),
        "mean_ms_per_frame": round(mean * 1000.0, 1),
        f"cpu_fps_{size}px": round(1.0 / cpu, 2),
        "cpu_ms_per_frame": round(cpu * 1000.0, 1),
        f"landmarks_only_fps_{size}px": round(1.0 / lm_median, 2),
        f"landmarks_only_cpu_fps_{size}px": round(1.0 / lm_cpu, 2),
        "photometric_share_cpu": round(1.0 - lm_cpu / cpu, 3),
        "meets_target_5fps": bool(1.0 / median >= 5.0),
        f"fps_{size}px_{threads}_threads": round(1.0 / all_median, 2),
        "max_rotation_error_deg": round(float(torch.rad2deg(torch.acos(cos)).max()), 3),
        "max_expression_error_sd": round(float((result.expression - clip.truth.expression).abs().max()), 3),
    })
    mp = _mediapipe(4 if quick else 20)
    figures.update({k: round(v, 2) for k, v in mp.items()})
    if mp:
        figures[f"fps_with_mediapipe_{size}px"] = round(1000.0 / (median * 1000.0 + mp["mediapipe_tracking_ms"]), 2)
    if torch.cuda.is_available() and not quick:
        cuda = load_config(overrides={"run.device": "cuda", "track.resolution": 512})
        gpu_model, gpu_renderer = model.to("cuda"), registry.create("renderer", "vertex", cuda)
        gpu_clip = synthetic_clip(gpu_model, gpu_renderer, cuda, count=count, size=512)
        _, gpu_median, _ = _track_seconds(gpu_clip, gpu_model, gpu_renderer, cuda, {})
        figures["cuda_fps_512px"] = round(1.0 / gpu_median, 2)
    return figures
