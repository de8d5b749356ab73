"""Units and axes of a loaded mean shape, found from the data rather than assumed.

NextFace model space is Basel's: millimetres, x left–right (the mirror axis), y up, +z out
of the face. These checks raise :class:`InputError` when a file does not fit, and return
the scale that brings it to millimetres plus a one-line description of what was found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nextface_core.errors import InputError
from nextface_core.mesh import face_normals, symmetry_map, vertex_normals

#: (unit name, factor to millimetres, plausible largest extent of a face or head in that unit)
_UNITS = (
    ("mm", 1.0, (50.0, 500.0)),
    ("cm", 10.0, (5.0, 50.0)),
    ("m", 1000.0, (0.05, 0.5)),
    ("um", 1e-3, (5e4, 5e5)),
)


@dataclass(frozen=True)
class Frame:
    """What the checks found: ``units`` of the file, ``scale`` to millimetres, and the axes."""

    units: str
    scale: float
    extent_mm: tuple[float, float, float]
    axes: str
    mirror_residual_mm: float


def check_frame(mean: np.ndarray, faces: np.ndarray, source: str) -> Frame:
    """Find the units from the extent, then check the axes on the mean ``[N,3]``:

    - x is the mirror axis: mirroring x leaves the shape closer to itself than mirroring y or z;
    - +z is out of the face: the area-weighted mean face normal points to +z (faces wound
      counter-clockwise seen from outside) and the most forward vertex (the nose tip) lies on
      the mirror plane;
    - y is up: the surface just below the nose tip (the nostrils) faces down more steeply
      than the nasal bridge above it faces up.
    """
    extent = mean.max(0) - mean.min(0)
    largest = float(extent.max())
    for name, factor, (lo, hi) in _UNITS:
        if lo <= largest <= hi:
            units, scale = name, factor
            break
    else:
        raise InputError(
            f"{source}: the mean shape spans {largest:.4g} units, which is no plausible face size in mm, cm, m or µm",
            "check that this is a BFM 2017 file",
        )
    p = torch.from_numpy(mean.astype(np.float64) * scale)
    f = torch.from_numpy(faces)
    residual = [float(symmetry_map(p, axis)[1].mean()) for axis in range(3)]
    if int(np.argmin(residual)) != 0:
        raise InputError(
            f"{source}: the shape is not mirror-symmetric about x = 0 (mean residuals x/y/z: "
            f"{residual[0]:.2f}/{residual[1]:.2f}/{residual[2]:.2f} mm)",
            "the Basel layout has x left–right; check the file",
        )
    mean_normal = face_normals(p, f).sum(0)
    mean_normal = mean_normal / face_normals(p, f).norm(dim=1).sum()
    tip = int(p[:, 2].argmax())
    width = float(extent[0] * scale)
    if float(mean_normal[2]) <= 0.2 or abs(float(p[tip, 0])) > 0.1 * width:
        raise InputError(
            f"{source}: the face does not look towards +z (mean normal z = {float(mean_normal[2]):.2f}, "
            f"most forward vertex at x = {float(p[tip, 0]):.1f} mm)",
            "the Basel layout has +z out of the face with counter-clockwise triangles; check the file",
        )
    normals = vertex_normals(p, f)
    near = (p - p[tip]).norm(dim=1) < 25.0
    below = near & (p[:, 1] < p[tip, 1])
    above = near & (p[:, 1] > p[tip, 1])
    if not below.any() or not above.any() or float(normals[below, 1].mean() + normals[above, 1].mean()) >= 0:
        raise InputError(
            f"{source}: y does not point up (the surface below the nose tip does not face down)",
            "the Basel layout has y up; check the file",
        )
    return Frame(
        units=units,
        scale=scale,
        extent_mm=tuple(float(e * scale) for e in extent),
        axes="x left-right (mirror), y up, +z out of the face",
        mirror_residual_mm=residual[0],
    )
