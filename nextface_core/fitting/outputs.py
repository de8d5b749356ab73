"""Writing a :class:`FitResult` to a folder: meshes, maps, env maps, composites, parameters.

Layout (per image ``NAME``, or one ``identity/`` folder for a shared identity)::

    OUT/summary.json
    OUT/NAME/mesh.obj, mesh.mtl, diffuse.png, specular.png, roughness.png   (identity files)
    OUT/NAME/envmap.png, envmap.exr, composite.png, landmarks.png, params.npz, params.json
    OUT/loss_stage{1,2,3}.png

Every file is written to a temporary name and renamed, so an interrupted save leaves no
half-written file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..color import linear_to_srgb
from ..exr import write_exr
from ..files import atomic_path, write_bytes, write_text
from ..mesh import vertex_normals
from ..obj import ObjMesh, obj_text
from ..overlay import draw_landmarks
from ..render import RenderMode
from ..sh import sh_to_envmap
from .result import FitResult

DETECTED = (40, 220, 60)  # green: the detector's landmarks
FITTED = (230, 40, 40)  # red: the fitted model's projected landmarks


def to_uint8(linear: torch.Tensor) -> np.ndarray:
    """Linear RGB ``[H,W,C]`` → sRGB uint8 array."""
    return (linear_to_srgb(linear.detach().float()).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def save_png(path: Path, array: np.ndarray) -> None:
    """Atomically save a uint8 ``[H,W]`` or ``[H,W,3]`` array as PNG."""
    buf = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[2] == 1 else array).save(buf, format="PNG")
    write_bytes(path, buf.getvalue())


MTL = """# NextFace material: diffuse and specular albedo (sRGB PNG), roughness (PBR extension)
newmtl face
Kd 1 1 1
Ks 1 1 1
map_Kd diffuse.png
map_Ks specular.png
map_Pr roughness.png
"""


def _write_identity(folder: Path, vertices: torch.Tensor, result: FitResult, s: int) -> None:
    model = result.model
    normals = vertex_normals(vertices[None], model.faces)[0]
    mesh = ObjMesh(vertices.cpu().numpy(), model.uv.cpu().numpy(), normals.cpu().numpy(), model.faces.cpu().numpy())
    write_text(folder / "mesh.obj", obj_text(mesh, "mesh.mtl"))
    write_text(folder / "mesh.mtl", MTL)
    diffuse, specular, rough = result.textures()
    save_png(folder / "diffuse.png", to_uint8(diffuse[s]))
    save_png(folder / "specular.png", to_uint8(specular[s]))
    save_png(folder / "roughness.png", (rough[s].clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8))


def _loss_plots(out: Path, result: FitResult, prefix: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for report in result.stages:
        if not report.losses:
            continue
        fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
        ax.plot(np.arange(1, len(report.losses) + 1), report.losses)
        ax.set_yscale("log" if min(report.losses) > 0 else "linear")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.set_title(f"stage {report.stage}: {report.iterations} iterations, {report.seconds:.1f} s")
        fig.tight_layout()
        with atomic_path(out / f"{prefix}loss_stage{report.stage}.png") as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)


def _composite(result: FitResult) -> list[np.ndarray]:
    """input | overlay | reconstruction | diffuse | specular | roughness, per image."""
    diffuse, specular, rough = result.textures()
    full = result.render()
    tiles = [
        result.batch.images,
        full.image * full.mask + result.batch.images * (1.0 - full.mask),
        full.image * full.mask,
        result.render(RenderMode.ALBEDO).image,
        result.render(RenderMode.ALBEDO, (specular, specular, rough)).image,
        result.render(RenderMode.ALBEDO, (rough.expand(*rough.shape[:3], 3), specular, rough)).image,
    ]
    out = []
    for b, (h, w) in enumerate(result.batch.sizes):
        out.append(np.concatenate([to_uint8(t[b, :h, :w]) for t in tiles], axis=1))
    return out, full


def save_result(result: FitResult, out: str | Path, checkpoint: bool = True) -> Path:
    """Write every output of ``result`` under ``out`` and return the summary path."""
    out = Path(out)
    summary = save_outputs(result, out)
    if checkpoint:
        result.checkpoint().save(out / f"checkpoint_stage{result.completed_stage}.npz")
    path = out / "summary.json"
    write_text(path, json.dumps(summary, indent=2))
    return path


def save_outputs(result: FitResult, out: str | Path, prefix: str = "") -> dict:
    """Write the per-image folders and the loss plots (``{prefix}loss_stageN.png``) of
    ``result`` under ``out``; return the content of its ``summary.json`` (not written)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    composites, full = _composite(result)
    metrics = result.metrics(full)
    params = result.params
    vertices = result.vertices()
    shared = params.shared_identity
    if shared:
        identity = result.scene.vertices(
            type(params)(**{**params.tensors(), "expression": torch.zeros_like(params.expression)})
        )[0]
        _write_identity(out / "identity", identity, result, 0)
    envmaps = sh_to_envmap(params.sh, result.config.light.envmap_resolution)
    for b, name in enumerate(result.names):
        folder = out / name
        if not shared:
            _write_identity(folder, vertices[b], result, b)
        env = envmaps[b].detach().cpu().numpy().astype(np.float32)
        write_exr(folder / "envmap.exr", env)
        save_png(folder / "envmap.png", to_uint8(envmaps[b] / max(float(envmaps[b].max()), 1e-6)))
        save_png(folder / "composite.png", composites[b])
        detected = draw_landmarks(result.batch.srgb[b], result.landmark_targets[b].cpu(), colour=DETECTED)
        overlay = draw_landmarks(detected, result.landmarks[b].cpu(), colour=FITTED, rim=False)
        save_png(folder / "landmarks.png", overlay)
        _save_params(folder, result, b, metrics[b])  # last: its params.json marks the image as done
    _loss_plots(out, result, prefix)
    return result.summary(metrics)


def _save_params(folder: Path, result: FitResult, b: int, metrics: dict) -> None:
    p = result.params
    s = 0 if p.shared_identity else b
    arrays = {
        "shape": p.shape[s],
        "expression": p.expression[b],
        "diffuse": p.diffuse[s],
        "specular": p.specular[s],
        "rotation": p.rotation[b],
        "translation": p.translation[b],
        "focal": p.focal[b],
        "principal_point": result.batch.principal_point[b],
        "sh": p.sh[b],
        "landmarks_projected": result.landmarks[b],
        "landmarks_detected": result.landmark_targets[b],
    }
    arrays = {k: v.detach().cpu().numpy() for k, v in arrays.items()}
    with atomic_path(folder / "params.npz") as tmp:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
    h, w = result.batch.sizes[b]
    meta = {
        "image": result.names[b],
        "image_size": [h, w],
        "resize_scale": result.batch.scales[b],
        "model": result.model.name,
        "landmark_schema": result.schema,
        "shared_identity": p.shared_identity,
        "rotation_axis_angle": arrays["rotation"].tolist(),
        "rotation_degrees": float(np.degrees(np.linalg.norm(arrays["rotation"]))),
        "translation": arrays["translation"].tolist(),
        "focal": float(arrays["focal"]),
        "principal_point": arrays["principal_point"].tolist(),
        "sh_bands": int(round(arrays["sh"].shape[0] ** 0.5)),
        "conventions": "camera: OpenCV (x right, y down, z forward); model: Basel (mm, y up, +z out of the face); "
        "camera = R(rotation) @ (diag(1,-1,-1) model) + translation",
        **metrics,
    }
    write_text(folder / "params.json", json.dumps(meta, indent=2))
