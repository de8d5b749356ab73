"""Geometry of the exports: mesh units, the camera in OpenCV and OpenGL/glTF conventions,
``camera.json``, and the light's frame (DESIGN.md §7).

The *world* of every export is the frame of the exported mesh: NextFace model space (x
left–right, +Y up, +Z out of the face), scaled to the chosen units (metres by default). A
world point ``X`` is seen by the photo's camera at

    X_opencv = A X + t      A = R(rotation) · diag(1, −1, −1),  t = translation · scale

(:mod:`nextface_core.camera`, with the translation scaled from millimetres), and at
``X_opengl = diag(1, −1, −1) X_opencv`` in the OpenGL/glTF camera frame (x right, y up,
looking along −z).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .camera import axis_angle_to_matrix, matrix_to_axis_angle
from .errors import UsageError
from .gltf import GltfCamera, yfov
from .mesh import vertex_normals
from .obj import UNIT_NAMES, ObjMesh
from .sh import SH_AXES_IN_CAMERA, dominant_direction

#: mesh units of the exports → factor from model space (millimetres)
MESH_UNITS = {"m": 1e-3, "mm": 1.0}
#: OpenCV camera frame → OpenGL/glTF camera frame (4×4)
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
CAMERA_FORMAT = "nextface-camera-1"


def unit_scale(units: str) -> float:
    """The factor from model space (mm) to ``units`` ("m" or "mm")."""
    if units not in MESH_UNITS:
        raise UsageError(f"mesh units {units!r} are not known", f"use one of {', '.join(MESH_UNITS)}")
    return MESH_UNITS[units]


def export_mesh(vertices: torch.Tensor, faces: torch.Tensor, uv: torch.Tensor, scale: float) -> ObjMesh:
    """Model-space ``vertices [N,3]`` (mm) → a mesh in the export units with unit normals."""
    normals = vertex_normals(vertices[None], faces)[0]
    return ObjMesh((vertices.detach().double() * scale).cpu().numpy(), uv.detach().cpu().numpy(),
                   normals.detach().cpu().numpy(), faces.detach().cpu().numpy())


def world_to_camera(rotation: torch.Tensor, translation: torch.Tensor, scale: float) -> np.ndarray:
    """World → OpenCV camera ``[...,4,4]`` from a fit's ``rotation [...,3]`` (axis-angle) and
    ``translation [...,3]`` (mm), for a world in units ``scale`` × mm."""
    r = axis_angle_to_matrix(rotation.detach().double().cpu()).numpy()
    m = np.zeros((*r.shape[:-2], 4, 4))
    m[..., :3, :3] = r * np.array([1.0, -1.0, -1.0])  # R @ diag(1, -1, -1)
    m[..., :3, 3] = translation.detach().double().cpu().numpy() * scale
    m[..., 3, 3] = 1.0
    return m


def quaternion(matrix: np.ndarray) -> np.ndarray:
    """Rotation ``[...,3,3]`` → unit quaternion ``[...,4]`` (x, y, z, w), glTF's order."""
    v = matrix_to_axis_angle(torch.from_numpy(np.asarray(matrix, dtype=np.float64))).numpy()
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    half = np.where(angle > 1e-12, np.sin(angle / 2.0) / np.maximum(angle, 1e-12), 0.5)
    return np.concatenate([v * half, np.cos(angle / 2.0)], axis=-1)


def gltf_camera(world_to_cv: np.ndarray, focal: float, size: tuple[int, int]) -> GltfCamera:
    """The glTF camera node of a photo: pose = inverse of world → OpenGL camera; the field of
    view from ``focal`` (pixels) and ``size`` (H, W). glTF has no off-centre principal point."""
    h, w = size
    cam_to_world = np.linalg.inv(OPENCV_TO_OPENGL @ world_to_cv)
    depth = float(np.linalg.norm(world_to_cv[:3, 3]))
    return GltfCamera(yfov(focal, h), w / h, depth / 100.0, depth * 100.0, cam_to_world[:3, 3],
                      quaternion(cam_to_world[:3, :3]))


def intrinsics(focal: float, principal_point: np.ndarray) -> np.ndarray:
    """The 3×3 pinhole matrix ``K``."""
    return np.array([[focal, 0.0, principal_point[0]], [0.0, focal, principal_point[1]], [0.0, 0.0, 1.0]])


def camera_record(*, image: str, size: tuple[int, int], input_scale: float, focal: float, principal_point: np.ndarray,
                  rotation: torch.Tensor, translation: torch.Tensor, sh: torch.Tensor, units: str,
                  mesh_files: list[str], envmap_files: list[str]) -> dict[str, Any]:
    """The content of ``camera.json`` for one image (see the module notes for the frames)."""
    scale = unit_scale(units)
    h, w = size
    m = world_to_camera(rotation, translation, scale)
    a = m[:3, :3]
    sh_axes_camera = np.asarray(SH_AXES_IN_CAMERA, dtype=np.float64).T  # columns: SH X, Y, Z in camera coordinates
    sh_axes_world = a.T @ sh_axes_camera
    light: dict[str, Any] = {
        "sh_bands": int(round(sh.shape[0] ** 0.5)),
        "sh_coefficients_rgb": sh.detach().double().cpu().numpy().tolist(),
        "sh_basis": "real spherical harmonics, orthonormal, no Condon-Shortley phase; coefficient l(l+1)+m of band l, "
        "order m; evaluated at a unit direction written in the SH frame (X, Y, Z) below; linear RGB radiance",
        "sh_frame": "rows of sh_frame_axes_*: the SH frame's X, Y and Z axes; Z is the camera's up (OpenCV -y), "
        "the env map's pole",
        "sh_frame_axes_in_camera_opencv": sh_axes_camera.T.tolist(),
        "sh_frame_axes_in_world": sh_axes_world.T.tolist(),
        "envmap": {
            "files": envmap_files,
            "layout": "equirectangular, H rows x 2H columns; texel (i, j) looks along polar angle theta = pi (i + 1/2) / H "
            "from the SH +Z axis (row 0 looks up) and azimuth phi = 2 pi (j + 1/2) / W from the SH +X axis towards +Y",
            "up_world": sh_axes_world[:, 2].tolist(),
            "azimuth_0_world": sh_axes_world[:, 0].tolist(),
            "azimuth_90_world": sh_axes_world[:, 1].tolist(),
        },
    }
    if sh.shape[0] >= 4:
        d = dominant_direction(sh.detach()[None].double().cpu())[0].numpy()
        light["dominant_direction_camera_opencv"] = d.tolist()
        light["dominant_direction_world"] = (a.T @ d).tolist()
    return {
        "format": CAMERA_FORMAT,
        "image": image,
        "width": w,
        "height": h,
        "input_scale": input_scale,
        "units": units,
        "mesh": mesh_files,
        "world": f"the frame of {' and '.join(mesh_files)}: x left-right, +Y up, +Z out of the face, in {UNIT_NAMES[units]}",
        "K": intrinsics(focal, principal_point).tolist(),
        "pixels": "(0, 0) is the top-left corner of the top-left pixel, pixel centres at integer + 0.5, in the image "
        "as fitted (the input image scaled by input_scale); pixel = K @ X_opencv / z",
        "world_to_camera_opencv": m.tolist(),
        "world_to_camera_opengl": (OPENCV_TO_OPENGL @ m).tolist(),
        "camera_to_world_opengl": np.linalg.inv(OPENCV_TO_OPENGL @ m).tolist(),
        "conventions": {
            "opencv": "camera x right, y down, looking along +z",
            "opengl": "camera x right, y up, looking along -z (glTF cameras; the photo camera node of mesh.glb)",
            "matrices": "4x4 row-major, acting on column vectors [x, y, z, 1]",
        },
        "light": light,
    }
