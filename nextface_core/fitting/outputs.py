"""Writing a :class:`FitResult` to a folder: meshes, maps, env maps, composites, parameters.

Layout (per image ``NAME``, or one ``identity/`` folder for a shared identity)::

    OUT/summary.json
    OUT/NAME/mesh.obj, mesh.mtl, diffuse.png, specular.png, roughness.png, pbr_roughness.png   (identity files)
    OUT/NAME/mesh.glb, camera.json   (the image's mesh with its expression, and its camera)
    OUT/NAME/envmap.png, envmap.exr, composite.png, landmarks.png, mask.png, params.npz, params.json
    OUT/loss_stage{1,2,3}.png
    OUT/report.html, OUT/NAME/report.html   (:mod:`nextface_core.report`)

Meshes are in ``output.mesh_units`` (metres by default, :mod:`nextface_core.exports`).

Each image's folder is written into a temporary folder and renamed into place whole, and
every other file to a temporary name, so an interrupted save leaves no half-written output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..color import linear_to_srgb
from ..exr import write_exr
from ..files import atomic_folder, atomic_path, write_bytes, write_text
from ..exports import camera_record, export_mesh, gltf_camera, unit_scale, world_to_camera
from ..gltf import PbrMaps, glb_bytes, perceptual_roughness, png_bytes
from ..obj import obj_text
from ..overlay import fit_overlay
from ..render import RenderMode, composite
from ..report import write_fit_report
from ..sh import sh_to_envmap
from .result import FitResult


def to_uint8(linear: torch.Tensor) -> np.ndarray:
    """Linear RGB ``[H,W,C]`` → sRGB uint8 array."""
    return (linear_to_srgb(linear.detach().float()).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def save_png(path: Path, array: np.ndarray) -> None:
    """Atomically save a uint8 ``[H,W]`` or ``[H,W,3]`` array as PNG."""
    write_bytes(path, png_bytes(array.squeeze(-1) if array.ndim == 3 and array.shape[2] == 1 else array))


MTL = """# NextFace material: diffuse and specular albedo (sRGB PNG), perceptual roughness (PBR extension)
newmtl face
Kd 1 1 1
Ks 1 1 1
Pm 0
map_Kd diffuse.png
map_Ks specular.png
map_Pr pbr_roughness.png
map_Ns pbr_roughness.png
"""


@dataclass
class MapImages:
    """uint8 images of one identity's maps: ``pbr`` the material of the OBJ and glTF exports
    (diffuse, specular, perceptual roughness) and ``roughness`` NextFace's own roughness ``r``."""

    pbr: PbrMaps
    roughness: np.ndarray


def texture_images(result: FitResult) -> list[MapImages]:
    """The map images of each identity row ``s`` of ``result.textures()``."""
    diffuse, specular, rough = result.textures()
    r = rough[..., 0].clamp(0, 1).cpu().numpy()
    return [MapImages(PbrMaps(to_uint8(diffuse[s]), to_uint8(specular[s]), _gray(perceptual_roughness(r[s]))), _gray(r[s]))
            for s in range(diffuse.shape[0])]


def _gray(values: np.ndarray) -> np.ndarray:
    return (values * 255.0 + 0.5).astype(np.uint8)


def write_maps(folder: Path, maps: MapImages) -> None:
    """diffuse.png, specular.png, roughness.png (NextFace's ``r``) and pbr_roughness.png (``√r``)."""
    save_png(folder / "diffuse.png", maps.pbr.diffuse)
    save_png(folder / "specular.png", maps.pbr.specular)
    save_png(folder / "roughness.png", maps.roughness)
    save_png(folder / "pbr_roughness.png", maps.pbr.roughness)


def write_obj(folder: Path, vertices: torch.Tensor, result: FitResult) -> None:
    """mesh.obj + mesh.mtl of model-space ``vertices [N,3]``, in the configured mesh units."""
    units = result.config.output.mesh_units
    mesh = export_mesh(vertices, result.model.faces, result.model.uv, unit_scale(units))
    write_text(folder / "mesh.obj", obj_text(mesh, units=units, mtl="mesh.mtl"))
    write_text(folder / "mesh.mtl", MTL)


def write_glb(path: Path, vertices: torch.Tensor, result: FitResult, maps: MapImages, image: int | None = None) -> None:
    """The ``.glb`` of model-space ``vertices [N,3]`` with ``maps``; with ``image``, also that
    photo's camera (the node a viewer can look through)."""
    scale = unit_scale(result.config.output.mesh_units)
    camera = None
    if image is not None:
        p = result.params
        to_cv = world_to_camera(p.rotation[image], p.translation[image], scale)
        camera = gltf_camera(to_cv, float(p.focal[image]), result.batch.sizes[image])
    mesh = export_mesh(vertices, result.model.faces, result.model.uv, scale)
    write_bytes(path, glb_bytes(mesh, maps.pbr, "face", camera=camera))


def write_camera(path: Path, result: FitResult, image: int, mesh_files: list[str]) -> None:
    """``camera.json`` of image ``image`` (:func:`~nextface_core.exports.camera_record`)."""
    p = result.params
    record = camera_record(
        image=result.names[image], size=result.batch.sizes[image], input_scale=result.batch.scales[image],
        focal=float(p.focal[image]), principal_point=result.batch.principal_point[image].double().cpu().numpy(),
        rotation=p.rotation[image], translation=p.translation[image], sh=p.sh[image],
        units=result.config.output.mesh_units, mesh_files=mesh_files, envmap_files=["envmap.exr", "envmap.png"],
    )
    write_text(path, json.dumps(record, indent=2))


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
    """The tiles of :data:`~nextface_core.report.COMPOSITE_TILES` side by side, per image."""
    diffuse, specular, rough = result.textures()
    full = result.render()
    tiles = [
        result.batch.images,
        composite(full, result.batch.images),
        full.image,
        result.render(RenderMode.ALBEDO).image,
        result.render(RenderMode.ALBEDO, (specular, specular, rough)).image,
        result.render(RenderMode.ALBEDO, (rough.expand(*rough.shape[:3], 3), specular, rough)).image,
    ]
    out = []
    for b, (h, w) in enumerate(result.batch.sizes):
        out.append(np.concatenate([to_uint8(t[b, :h, :w]) for t in tiles], axis=1))
    return out, full


def save_result(result: FitResult, out: str | Path, checkpoint: bool = True) -> Path:
    """Write every output of ``result`` under ``out`` and return the summary path.

    The checkpoint comes first (so any later failure leaves a resumable fit), then each
    image's folder, written whole into a temporary folder and renamed into place (a crash,
    a kill or a full disk leaves the complete folder or none), then the loss plots and,
    last, ``summary.json``. A write that fails raises :class:`~nextface_core.errors.OutputError`.
    """
    out = Path(out)
    if checkpoint:
        result.checkpoint().save(out / f"checkpoint_stage{result.completed_stage}.npz")
    path = out / "summary.json"
    write_text(path, json.dumps(save_outputs(result, out), indent=2))
    write_fit_report(out)
    return path


def save_outputs(result: FitResult, out: str | Path, prefix: str = "") -> dict:
    """Write the per-image folders (each written whole into a temporary folder and renamed
    into place) and the loss plots (``{prefix}loss_stageN.png``) of ``result`` under ``out``;
    return the content of its ``summary.json`` (not written)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    composites, full = _composite(result)
    metrics = result.metrics(full)
    params = result.params
    vertices = result.vertices()
    shared = params.shared_identity
    maps = texture_images(result)
    if shared:
        identity = result.scene.vertices(
            type(params)(**{**params.tensors(), "expression": torch.zeros_like(params.expression)})
        )[0]
        with atomic_folder(out / "identity") as folder:
            write_obj(folder, identity, result)
            write_maps(folder, maps[0])
            write_glb(folder / "mesh.glb", identity, result, maps[0])
    envmaps = sh_to_envmap(params.sh, result.config.light.envmap_resolution)
    for b, name in enumerate(result.names):
        with atomic_folder(out / name) as folder:
            s = 0 if shared else b
            if not shared:
                write_obj(folder, vertices[b], result)
                write_maps(folder, maps[s])
            write_glb(folder / "mesh.glb", vertices[b], result, maps[s], image=b)
            write_camera(folder / "camera.json", result, b, ["mesh.glb"] if shared else ["mesh.glb", "mesh.obj"])
            _write_envmap(folder, envmaps[b])
            save_png(folder / "composite.png", composites[b])
            _write_landmarks(folder, result, b)
            _write_mask(folder, result, b)
            _save_params(folder, result, b, metrics[b])
    _loss_plots(out, result, prefix)
    return result.summary(metrics)


def _write_envmap(folder: Path, envmap: torch.Tensor) -> None:
    """The light as an equirectangular map ``[H,2H,3]``: linear EXR and a normalised sRGB PNG."""
    write_exr(folder / "envmap.exr", envmap.detach().cpu().numpy().astype(np.float32))
    save_png(folder / "envmap.png", to_uint8(envmap / max(float(envmap.max()), 1e-6)))


def landmark_overlay(result: FitResult, b: int, photo: np.ndarray | None = None) -> np.ndarray:
    """Image ``b`` with its detections (green) and the model's landmark points as the fit
    projects them (red: fixed surface points, e.g. a ``mediapipe478`` calibration's; orange:
    jaw-contour points), each joined to its detection (:func:`~nextface_core.overlay.fit_overlay`).
    Drawn on the fit's resized photo, or on ``photo [H,W,3]`` (the original) when given."""
    n_fixed = result.scene.landmarks[result.schema].fixed_landmarks.shape[0]
    contour = torch.arange(result.landmarks.shape[1]) >= n_fixed
    scale = 1.0 if photo is None else result.batch.scales[b]
    return fit_overlay(result.batch.srgb[b] if photo is None else photo, result.landmark_targets[b] / scale,
                       result.landmarks[b] / scale, result.landmark_weights[b] > 0, contour)


def _write_landmarks(folder: Path, result: FitResult, b: int) -> None:
    save_png(folder / "landmarks.png", landmark_overlay(result, b))


def _write_mask(folder: Path, result: FitResult, b: int) -> None:
    """``mask.png``: the face region the photometric terms count (white 255 in, black 0 out)."""
    h, w = result.batch.sizes[b]
    mask = result.batch.face_mask[b, :h, :w, 0].clamp(0, 1).cpu().numpy()
    save_png(folder / "mask.png", _gray(mask))


def _save_params(folder: Path, result: FitResult, b: int, metrics: dict) -> None:
    p = result.params
    s = 0 if p.shared_identity else b
    arrays = {
        "shape": p.shape[s],
        "expression": p.expression[b],
        "diffuse": p.diffuse[s],
        "specular": p.specular[s],
        "specular_log_scale": p.specular_log_scale[s],
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
