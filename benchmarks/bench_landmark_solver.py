"""Benchmark ``landmark_solver``: stage 1 by Levenberg–Marquardt against L-BFGS, side by side.

Synthetic faces of the full-size synthetic model (28588 vertices, 199 shape and 100
expression components) with random identity, expression and head pose, 256 px, focal
refined; landmarks are the true projections plus 0.5 px of Gaussian noise. Each face is
fitted by stage 1 only, twice in the same run:

- baseline: the previous stage 1, L-BFGS with a strong-Wolfe line search on the same loss
  (``stage1.iterations`` loss evaluations at most; kept here as the baseline);
- the Levenberg–Marquardt solver of :mod:`nextface_core.fitting.landmark_solver`.

Figures, medians over the faces: iterations per second (LM: linear solves; L-BFGS: loss
evaluations), seconds, final loss, landmark error (px), rotation (deg), translation (mm) and
focal (%) errors against the truth. Target: LM ≥ 2000 it/s, its errors ≤ the baseline's.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

TARGET_IT_PER_S = 2000.0


def _lbfgs_stage1(self, params, maps):
    """The previous stage 1 (L-BFGS on the landmark and prior terms), as the baseline."""
    from nextface_core.fitting.result import StageReport

    cfg = self.cfg
    names = ["rotation", "translation", "expression", "shape"] + (["focal"] if cfg.camera.optimize_focal else [])
    scales = {n: self._step_scale(n, getattr(params, n)) for n in names}
    raw = {n: (getattr(params, n).detach() / scales[n]).requires_grad_(True) for n in names}
    opt = torch.optim.LBFGS(list(raw.values()), lr=1.0, max_iter=cfg.stage1.iterations, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)
    history = []

    def closure():
        opt.zero_grad(set_to_none=True)
        for n in names:
            setattr(params, n, raw[n] * scales[n])
        loss, _ = self._total(1, self._context(1, params))
        loss.backward()
        history.append(float(loss.detach()))
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(threads)
    for n in names:
        setattr(params, n, (raw[n] * scales[n]).detach())
    return params.detached(), maps, StageReport(1, len(history), time.perf_counter() - t0, history)


def _faces(model, count: int, size: int):
    from nextface_core.synthetic import synthetic_scene
    from nextface_core.camera import model_to_camera, project
    from nextface_core.landmarks import LandmarkSet

    g = torch.Generator().manual_seed(1)
    for seed in range(count):
        truth = synthetic_scene(model, image_size=size, seed=seed)
        angles = (torch.rand(3, generator=g) * 2.0 - 1.0) * torch.tensor([15.0, 35.0, 10.0])
        truth.rotation = torch.deg2rad(angles)[None].to(model.dtype)
        truth.focal = truth.focal * float(0.8 + 0.4 * torch.rand(1, generator=g))
        assoc = model.landmarks["ibug68"]
        verts = (model.shape_mean + torch.einsum("bk,knc->bnc", truth.shape * model.shape_var.sqrt(), model.shape_basis)
                 + torch.einsum("bk,knc->bnc", truth.expression * model.expression_var.sqrt(), model.expression_basis))
        pp = torch.full((1, 2), size / 2.0, dtype=model.dtype)
        pix = project(model_to_camera(verts[:, assoc.vertex_index], truth.rotation, truth.translation), truth.focal, pp)
        pix = pix + 0.5 * torch.randn(pix.shape, generator=g, dtype=pix.dtype)
        points = torch.zeros(1, 68, 2, dtype=model.dtype)
        conf = torch.zeros(1, 68, dtype=model.dtype)
        points[:, assoc.landmark_index] = pix
        conf[:, assoc.landmark_index] = 1.0
        yield truth, {"ibug68": LandmarkSet("ibug68", points, conf, torch.ones(1, dtype=torch.bool), [f"face{seed}"])}


def _errors(result, truth) -> dict[str, float]:
    from nextface_core.demo import _rotation_error_degrees

    p = result.params
    w = (result.landmark_weights > 0).to(p.focal.dtype)
    lm = float(((result.landmarks - result.landmark_targets).norm(dim=-1) * w).sum() / w.sum())
    s1 = result.stages[0]
    return {
        "it_per_s": s1.iterations_per_second,
        "iterations": float(s1.iterations),
        "seconds": s1.seconds,
        "loss": s1.losses[-1],
        "landmark_px": lm,
        "rotation_deg": _rotation_error_degrees(p.rotation, truth.rotation),
        "translation_mm": float((p.translation - truth.translation).norm()),
        "focal_pct": float((p.focal - truth.focal).abs().max() / truth.focal.max() * 100.0),
    }


def run(quick: bool = False) -> dict[str, object]:
    from nextface_core.config import load_config
    from nextface_core.fitting import Fitter, fitter as fitter_module
    from nextface_core.plugins import PluginRegistry
    from nextface_core.synthetic import synthetic_model

    size, count = 256, (2 if quick else 8)
    config = load_config(overrides={"run.device": "cpu"})
    registry = PluginRegistry()
    model = synthetic_model("small" if quick else "full")
    fitter = Fitter(config, registry=registry, model=model, renderer=registry.create("renderer", "vertex", config))
    image = np.full((size, size, 3), 128, dtype=np.uint8)
    rows = {"lbfgs": [], "lm": []}
    solver_stage1 = fitter_module._RunState.stage1
    for truth, landmarks in _faces(model, count, size):
        for name, stage1 in (("lbfgs", _lbfgs_stage1), ("lm", solver_stage1)):
            fitter_module._RunState.stage1 = stage1
            try:
                result = fitter.fit([image], ["face"], landmarks=landmarks, skip_stages=[2, 3])
            finally:
                fitter_module._RunState.stage1 = solver_stage1
            rows[name].append(_errors(result, truth))
    figures: dict[str, object] = {"faces": count, "model": f"{model.n_vertices} vertices, K_s={model.n_shape}, K_e={model.n_expression}"}
    for key in rows["lm"][0]:
        for name in ("lbfgs", "lm"):
            figures[f"{name}_{key}"] = round(statistics.median(r[key] for r in rows[name]), 4)
    figures["lm_it_per_s_target"] = TARGET_IT_PER_S
    figures["lm_speedup_seconds"] = round(figures["lbfgs_seconds"] / max(figures["lm_seconds"], 1e-9), 1)
    for key in ("landmark_px", "rotation_deg", "translation_mm", "focal_pct"):
        figures[f"lm_{key}_not_worse"] = all(
            m[key] <= b[key] * 1.05 + 1e-3 for m, b in zip(rows["lm"], rows["lbfgs"])
        )
    return figures
