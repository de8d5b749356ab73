"""Wavefront OBJ meshes as NextFace writes them: positions, uv (v up), normals, triangles."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import read_user_text


@dataclass
class ObjMesh:
    """``vertices [N,3]``, ``uv [N,2]`` (NextFace convention: v counted from the top, as glTF's),
    ``normals [N,3]``, ``faces [F,3]`` 0-based; one index per corner for all three. The mesh
    the OBJ and the glTF writers take (:func:`nextface_core.exports.export_mesh`)."""

    vertices: np.ndarray
    uv: np.ndarray
    normals: np.ndarray
    faces: np.ndarray


UNIT_NAMES = {"m": "metres", "mm": "millimetres"}


def obj_text(mesh: ObjMesh, *, units: str, mtl: str | None = None) -> str:
    """The OBJ text of ``mesh`` (texture v flipped to OBJ's bottom-up convention); ``units``
    ("m" or "mm") names the units its vertices are already in, for the header."""
    out = io.StringIO()
    out.write(f"# NextFace mesh: model space in {UNIT_NAMES[units]} (x left-right, +y up, +z out of the face)\n")
    if mtl:
        out.write(f"mtllib {mtl}\nusemtl face\n")
    np.savetxt(out, mesh.vertices, fmt="v %.7f %.7f %.7f")
    np.savetxt(out, np.stack([mesh.uv[:, 0], 1.0 - mesh.uv[:, 1]], 1), fmt="vt %.6f %.6f")
    np.savetxt(out, mesh.normals, fmt="vn %.5f %.5f %.5f")
    np.savetxt(out, np.repeat(mesh.faces + 1, 3, axis=1), fmt="f %d/%d/%d %d/%d/%d %d/%d/%d")
    return out.getvalue()


def read_obj(path: str | Path) -> ObjMesh:
    """Read an OBJ written by :func:`obj_text` (triangles, shared v/vt/vn indices)."""
    path = Path(path)
    lines = read_user_text(path, "mesh", InputError, "pass a result folder written by 'nextface fit'").splitlines()
    groups: dict[str, list[str]] = {"v": [], "vt": [], "vn": [], "f": []}
    for line in lines:
        key, _, rest = line.partition(" ")
        if key in groups:
            groups[key].append(rest)
    try:
        v = np.array([r.split() for r in groups["v"]], dtype=np.float64)
        vt = np.array([r.split() for r in groups["vt"]], dtype=np.float64)
        vn = np.array([r.split() for r in groups["vn"]], dtype=np.float64)
        f = np.array([[c.split("/")[0] for c in r.split()] for r in groups["f"]], dtype=np.int64) - 1
    except ValueError as exc:
        raise InputError(f"mesh {path} is not a NextFace OBJ ({exc})", "re-run 'nextface fit' to write it") from None
    if v.ndim != 2 or f.ndim != 2 or f.shape[1] != 3 or len(vt) != len(v) or len(vn) != len(v):
        raise InputError(f"mesh {path} is not a NextFace OBJ (needs one uv and normal per vertex, triangles)",
                         "re-run 'nextface fit' to write it")
    return ObjMesh(v, np.stack([vt[:, 0], 1.0 - vt[:, 1]], 1), vn, f)
