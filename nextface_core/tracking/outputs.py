"""Writing a :class:`TrackResult`: parameters over frames, CSV for animation tools, overlay video, OBJs.

Layout::

    OUT/track.npz        arrays over frames (T rows) + the identity; loaded with allow_pickle=False
    OUT/track.json       video, model, schema, identity source, counts, timings, frames without a face
    OUT/expression.csv   frame, time_s, status, e0 .. e{K-1} (standard deviations)
    OUT/pose.csv         frame, time_s, status, rx, ry, rz (axis-angle, rad), pitch/yaw/roll (deg), tx, ty, tz
    OUT/overlay.mp4      per frame: the frame with detected (green) / fitted (red) landmarks | the render over it
    OUT/track.glb        the identity mesh, expression as morph-target weights and head pose as node
                         animation per frame, seen by the video's camera (the scene's origin, glTF camera)
    OUT/report.html      the track's page (:mod:`nextface_core.report`)
    OUT/obj/frame000000.obj ...   with --obj: model-space meshes (identity + expression)

Meshes are in ``output.mesh_units`` (metres by default, :mod:`nextface_core.exports`).

Status per frame: ``tracked``, ``interpolated`` (a short gap without a face) or ``no face``
(a longer gap: the nearest tracked frame's parameters). Files are written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..version import __version__
from ..camera import axis_angle_to_matrix
from ..exports import OPENCV_TO_OPENGL, export_mesh, quaternion, unit_scale, world_to_camera
from ..files import atomic_path, write_bytes, write_text
from ..fitting.inputs import make_batch
from ..fitting.outputs import to_uint8
from ..gltf import GltfCamera, MorphAnimation, PbrMaps, glb_bytes, perceptual_roughness, yfov
from ..obj import obj_text
from ..render import composite
from ..report import write_track_report
from ..overlay import DETECTED_COLOUR, PROJECTED_COLOUR, draw_landmarks
from .track import INTERPOLATED, MISSING, STATUS_NAMES, TRACKED, Frames, TrackResult, frame_name
from .video import video_writer

#: border colour of the overlay per status (none for tracked frames)
BORDER = {INTERPOLATED: (255, 200, 0), MISSING: (255, 0, 0)}
CONVENTIONS = (
    "camera: OpenCV (x right, y down, z forward); model: Basel (mm, y up, +z out of the face); "
    "camera = R(rotation) @ (diag(1,-1,-1) model) + translation; "
    "pitch/yaw/roll: R(rotation) = Rz(roll) @ Ry(yaw) @ Rx(pitch), degrees, about the camera's axes"
)


def euler_degrees(rotation: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``[T,3]`` → (pitch, yaw, roll) ``[T,3]`` degrees with ``R = Rz(roll) Ry(yaw) Rx(pitch)``."""
    r = axis_angle_to_matrix(rotation)
    pitch = torch.atan2(r[:, 2, 1], r[:, 2, 2])
    yaw = torch.asin((-r[:, 2, 0]).clamp(-1.0, 1.0))
    roll = torch.atan2(r[:, 1, 0], r[:, 0, 0])
    return torch.rad2deg(torch.stack([pitch, yaw, roll], dim=-1))


def _times(result: TrackResult) -> np.ndarray:
    fps = result.fps if result.fps > 0 else 25.0
    return np.arange(result.frame_count) / fps


def _csv(path: Path, header: list[str], columns: list[np.ndarray], result: TrackResult) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["frame", "time_s", "status", *header])
    values = np.concatenate([c.reshape(result.frame_count, -1) for c in columns], axis=1)
    times = _times(result)
    for i in range(result.frame_count):  # one text row per frame: CSV writing, not a numeric hot path
        writer.writerow([i, f"{times[i]:.4f}", STATUS_NAMES[int(result.status[i])], *(f"{v:.6g}" for v in values[i])])
    write_text(path, buf.getvalue())


def _arrays(result: TrackResult) -> dict[str, np.ndarray]:
    to = lambda t: t.detach().cpu().numpy()  # noqa: E731
    ident = result.identity
    return {
        "rotation": to(result.rotation), "translation": to(result.translation), "expression": to(result.expression),
        "sh": to(result.sh), "focal": to(result.focal), "euler_degrees": to(euler_degrees(result.rotation)),
        "status": result.status.astype(np.int8), "found": result.status == TRACKED,
        "landmarks_detected": to(result.landmarks_detected), "landmarks_projected": to(result.landmarks_projected),
        "landmark_index": to(result.landmark_index), "landmark_error_px": result.landmark_error_px,
        "seconds": result.seconds, "time_s": _times(result),
        "principal_point": to(result.scene.principal_point[0]),
        "identity_shape": to(ident.shape[0]), "identity_diffuse": to(ident.diffuse[0]), "identity_specular": to(ident.specular[0]),
    }


def summary(result: TrackResult, video: str = "") -> dict[str, Any]:
    """The content of ``track.json``."""
    h, w = result.image_size
    tracked = result.status == TRACKED
    err = result.landmark_error_px[tracked]
    return {
        "version": __version__,
        "video": video,
        "frames": result.frame_count,
        "fps": result.fps,
        "tracked_size": [h, w],
        "scale": result.scale,
        "model": result.model.name,
        "landmark_schema": result.schema,
        "identity": result.identity.source,
        "keyframes": result.keyframes,
        "focal_ratio": result.identity.focal_ratio,
        "counts": result.counts(),
        "frames_without_face": [int(i) for i in np.flatnonzero(result.status != TRACKED)],
        "interpolated_frames": [int(i) for i in np.flatnonzero(result.status == INTERPOLATED)],
        "mean_landmark_error_px": float(err.mean()) if err.size else None,
        "tracking_frames_per_second": result.tracking_frames_per_second(),
        "tracking_seconds": float(result.seconds.sum()),
        "identity_seconds": result.identity_seconds,
        "landmark_seconds": result.detect_seconds,
        "status_codes": {str(k): v for k, v in STATUS_NAMES.items()},
        "conventions": CONVENTIONS,
    }


def _overlay_frame(result: TrackResult, index: int, image: np.ndarray, linear: torch.Tensor) -> np.ndarray:
    """The frame with landmarks | the render blended over it, ``[H, 2W, 3]`` uint8."""
    status = int(result.status[index])
    marks = image
    if status == TRACKED:
        idx = result.landmark_index.cpu()
        marks = draw_landmarks(image, result.landmarks_detected[index, idx], colour=DETECTED_COLOUR)
        marks = draw_landmarks(marks, result.landmarks_projected[index].cpu(), colour=PROJECTED_COLOUR, rim=False)
    out = result.render(index)
    blended = composite(out, linear)[0]
    panel = np.concatenate([marks, to_uint8(blended)], axis=1)
    if status in BORDER:
        b = max(2, image.shape[0] // 64)
        panel[:b], panel[-b:], panel[:, :b], panel[:, -b:] = BORDER[status], BORDER[status], BORDER[status], BORDER[status]
    return panel


def write_track_glb(path: Path, result: TrackResult) -> None:
    """``track.glb``: the identity mesh with one morph target per expression component (the
    offset of one standard deviation, so the weights are the expression coefficients), and the
    head pose per frame as the mesh node's animation in the OpenGL frame of the video's camera,
    which is the glTF camera node at the origin."""
    scale = unit_scale(result.config.output.mesh_units)
    k = result.expression.shape[1]
    unit = torch.cat([torch.zeros(1, k), torch.eye(k)]).to(result.expression)
    with torch.no_grad():
        v = result.scene.vertices(replace(result.identity.parameters(k + 1, result.sh[:1]), expression=unit))
    pose = OPENCV_TO_OPENGL @ world_to_camera(result.rotation, result.translation, scale)  # [T,4,4] mesh → camera (GL)
    animation = MorphAnimation(
        targets=((v[1:] - v[:1]) * scale).cpu().numpy(), names=[f"e{i}" for i in range(k)], times=_times(result),
        weights=result.expression.detach().cpu().numpy(), translation=pose[:, :3, 3], rotation=quaternion(pose[:, :3, :3]),
    )
    h, w = result.image_size
    depth = float(np.linalg.norm(pose[0, :3, 3]))
    camera = GltfCamera(yfov(float(result.focal[0]), h), w / h, depth / 100.0, depth * 100.0, np.zeros(3),
                        np.array([0.0, 0.0, 0.0, 1.0]))
    rough = np.full(result.scene.diffuse.shape[1:3], result.config.texture.initial_roughness)
    maps = PbrMaps(to_uint8(result.scene.diffuse[0]), to_uint8(result.scene.specular[0]),
                   (perceptual_roughness(rough) * 255.0 + 0.5).astype(np.uint8))
    mesh = export_mesh(v[0], result.model.faces, result.model.uv, scale)
    write_bytes(path, glb_bytes(mesh, maps, "face", camera=camera, animation=animation))


def save_track(result: TrackResult, frames: Frames, out: str | Path, *, video: str = "", overlay: bool = True,
               obj: bool = False) -> Path:
    """Write every output of ``result`` under ``out`` (``frames`` re-read for the overlay)
    and return the path of ``track.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arrays = _arrays(result)
    with atomic_path(out / "track.npz") as tmp:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
    k = arrays["expression"].shape[1]
    _csv(out / "expression.csv", [f"e{i}" for i in range(k)], [arrays["expression"]], result)
    _csv(out / "pose.csv", ["rx", "ry", "rz", "pitch_deg", "yaw_deg", "roll_deg", "tx", "ty", "tz"],
         [arrays["rotation"], arrays["euler_degrees"], arrays["translation"]], result)
    if overlay:
        h, w = result.image_size
        longer = max(h, w)
        with video_writer(out / "overlay.mp4", (2 * w, h), result.fps) as write:
            for i, frame in enumerate(frames()):
                if i >= result.frame_count:
                    break
                batch = make_batch([frame], [frame_name(i)], longer, result.scene.principal_point.device,
                                   result.model.dtype)
                write(_overlay_frame(result, i, batch.srgb[0], batch.images))
    write_track_glb(out / "track.glb", result)
    if obj:
        units = result.config.output.mesh_units
        for i in range(result.frame_count):
            mesh = export_mesh(result.vertices(i), result.model.faces, result.model.uv, unit_scale(units))
            write_text(out / "obj" / f"{frame_name(i)}.obj", obj_text(mesh, units=units))
    path = out / "track.json"
    write_text(path, json.dumps(summary(result, video), indent=2))
    write_track_report(out)
    return path
