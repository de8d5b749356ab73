"""Benchmark ``landmark_solver``: stage 1 by Levenberg–Marquardt against L-BFGS, side by side.

Synthetic faces of the full-size synthetic model (28588 vertices, 199 shape and 100
expression components) with random identity, expression and head pose, 256 px, focal
refined; landmarks are the true projections plus 0.5 px of Gaussian noise. Each face is
fitted by stage 1 only, twice in the same run:

- ``lbfgs``: the default stage ``landmarks`` (L-BFGS with a strong-Wolfe line search);
- ``lm``: the same loss solved by the Levenberg–Marquardt solver of
  :mod:`nextface_core.fitting.landmark_solver` (the tracker's), as a stage ``landmarks_lm``
  that this benchmark registers through a plugin, plus a weak focal prior (landmarks alone
  barely tell the focal length from the distance, and a converged solver walks off towards an
  orthographic camera).

The stage-1 loss is under-determined (199 + 100 coefficients and a pose against 51 points):
L-BFGS stops inside its iteration budget near the start, which regularises it; LM converges
to the loss's own minimum, which fits the landmark noise with the identity. That is why the
default stays L-BFGS (the figures below show it).

Figures, medians over the faces: iterations per second (LM: linear solves; L-BFGS: loss
evaluations), seconds, final loss, landmark error (px), rotation (deg), translation (mm) and
focal (%) errors against the truth. Then both on a real photo: the astronaut at 256 px with the
real Surrey model (``../shared/models/sfm-as-bfm``), MediaPipe's ibug-68 landmarks, stage 1
only: the ibug-68 error in % of the inter-ocular distance. Target (issue 17): LM ≥ 2000 it/s,
its errors ≤ L-BFGS's.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

TARGET_IT_PER_S = 2000.0


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


STAGES = {"lbfgs": "landmarks", "lm": "landmarks_lm"}
#: weight of (relative focal change)² in the LM stage
FOCAL_PRIOR = 0.1


class _LevenbergMarquardtStage:
    """Stage 1's loss (Charbonnier landmarks in % of the image side, shape and expression
    priors) solved by :class:`~nextface_core.fitting.landmark_solver.LandmarkSolver`."""

    name = "landmarks_lm"
    loss_stage = 1

    def run(self, state, params):
        from nextface_core.fitting.landmark_solver import PITCH_STARTS, LandmarkObjective, LandmarkSolver, Prior
        from nextface_core.fitting.result import StageReport
        from nextface_core.losses import LANDMARK_SMOOTHING

        cfg = state.config
        weights = state.landmark_weights.clamp_min(0.0)
        share = cfg.weights.landmarks_stage1 / weights.sum().clamp_min(1e-8)  # the loss's weighted mean as one sum
        focal = params.focal[:, None].detach()
        objective = LandmarkObjective(
            targets=state.landmark_targets, coefficients=weights * share, unit=100.0 / state.batch.longer_sides,
            principal_point=state.batch.principal_point, robust=LANDMARK_SMOOTHING,
            priors=[Prior(b, getattr(cfg.weights, f"{b}_prior") / max(1, getattr(params, b).numel())) for b in ("shape", "expression")]
            + [Prior("focal", FOCAL_PRIOR, focal, 1.0 / focal)],
        )
        t0 = time.perf_counter()
        solution = LandmarkSolver(state.rows).solve(params, objective, cfg.stage1.iterations,
                                                    free_focal=cfg.camera.optimize_focal, pitch_starts=PITCH_STARTS)
        return solution.params.detached(), StageReport(1, solution.iterations, time.perf_counter() - t0, solution.costs)


class _Plugin:
    """Registers :class:`_LevenbergMarquardtStage` (a plugin, as a third party would)."""

    from nextface_core.project import hookimpl

    @hookimpl
    def nextface_register_stages(self, register) -> None:
        register(_LevenbergMarquardtStage.name, lambda config: _LevenbergMarquardtStage(), description="stage 1 by LM")


def _registry():
    """The installed plugins and this benchmark's."""
    from nextface_core.plugins import PluginRegistry

    return PluginRegistry([("bench_landmark_lm", _Plugin())])
SFM = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "sfm-as-bfm"


def _astronaut_iod(stage: str, registry) -> float:
    """Stage ``stage`` alone on the astronaut (sfm-as-bfm, 256 px) → ibug-68 error, % IOD."""
    from skimage import data

    from nextface_core.config import load_config
    from nextface_core.fitting import Fitter

    config = load_config(overrides={"run.device": "cpu", "run.model": "basel", "model.path": str(SFM),
                                    "run.max_resolution": 256, "fit.stages": [stage], "landmarks.dense": False})
    result = Fitter(config, registry=registry).fit([np.ascontiguousarray(data.astronaut())], ["astronaut"])
    return float(result.metrics()[0]["ibug68_error_iod_percent"])


def run(quick: bool = False) -> dict[str, object]:
    from nextface_core.config import load_config
    from nextface_core.fitting import Fitter
    from nextface_core.synthetic import synthetic_model

    size, count = 256, (2 if quick else 8)
    registry = _registry()
    model = synthetic_model("small" if quick else "full")
    image = np.full((size, size, 3), 128, dtype=np.uint8)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in STAGES}
    for truth, landmarks in _faces(model, count, size):
        for name, stage in STAGES.items():
            config = load_config(overrides={"run.device": "cpu", "fit.stages": [stage]})
            fitter = Fitter(config, registry=registry, model=model, renderer=registry.create("renderer", "vertex", config))
            rows[name].append(_errors(fitter.fit([image], ["face"], landmarks=landmarks), truth))
    figures: dict[str, object] = {"faces": count, "model": f"{model.n_vertices} vertices, K_s={model.n_shape}, K_e={model.n_expression}"}
    for key in rows["lm"][0]:
        for name in STAGES:
            figures[f"{name}_{key}"] = round(statistics.median(r[key] for r in rows[name]), 4)
    figures["lm_it_per_s_target"] = TARGET_IT_PER_S
    figures["lm_it_per_s_ok"] = figures["lm_it_per_s"] >= TARGET_IT_PER_S
    figures["lm_speedup_seconds"] = round(figures["lbfgs_seconds"] / max(figures["lm_seconds"], 1e-9), 1)
    for key in ("landmark_px", "rotation_deg", "translation_mm", "focal_pct"):
        figures[f"lm_{key}_not_worse"] = all(
            m[key] <= b[key] * 1.05 + 1e-3 for m, b in zip(rows["lm"], rows["lbfgs"])
        )
    if SFM.is_dir():
        for name, stage in STAGES.items():
            figures[f"{name}_astronaut_ibug68_iod_percent"] = round(_astronaut_iod(stage, registry), 2)
    return figures
