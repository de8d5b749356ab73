"""ibug-68 landmark associations for the Basel meshes, with dynamic jaw-contour candidates.

Where they come from, in order of precedence:

1. Files in the model folder: ``landmarks_ibug68.txt`` (lines ``ibug index <TAB> vertex``,
   0-based, ``#`` comments) and ``contour_vertices.json`` (``{"right_contour": [...],
   "left_contour": [...]}``: candidate vertices for the subject's right jaw contour, ibug
   0–7, and left, ibug 9–16).
2. Published vertex indices for the real BFM 2017 meshes, recognised by their vertex and
   triangle counts and then checked on the mean shape (nose tip forward, eyes on their side):

   - ``model2017-1_face12_nomouth`` (28588 vertices): the ibug-68 indices published with the
     original NextFace, ``baselMorphableModel/landmark_68.txt`` in
     https://github.com/abdallahdib/NextFace (Dib et al., 2021).
   - ``model2017-1_bfm_nomouth`` (53149 vertices): eos's ``share/ibug_to_bfm2017-1_bfm_nomouth.txt``
     and ``share/bfm2017-1_bfm_nomouth_model_contours.json`` in
     https://github.com/patrikhuber/eos (Huber et al., 2016).

   The fixed jaw points (ibug 0–7, 9–16) of the published lists are not used: the jaw is
   matched dynamically.
3. Jaw-contour candidates computed from the mean shape when no contour file or published
   list exists: the silhouette vertex of each 4 mm height slice from the chin to ear level
   under yaw rotations from -30° to +60°.

The MediaPipe 478-point schema is not associated (no published BFM correspondence).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from nextface_core.errors import InputError
from nextface_core.model import LandmarkAssociation

LANDMARK_FILE = "landmarks_ibug68.txt"
CONTOUR_FILE = "contour_vertices.json"
RIGHT_JAW = tuple(range(0, 8))  # subject's right jaw, ear to chin (ibug 0-based)
LEFT_JAW = tuple(range(16, 8, -1))  # subject's left jaw, ear to chin
CHIN = 8

# (vertices, triangles) -> {ibug index (0-based): vertex}; jaw points other than the chin omitted
_FACE12 = {
    8: 27061, 17: 22586, 18: 22991, 19: 23303, 20: 23519, 21: 23736, 22: 24312, 23: 24527,
    24: 24743, 25: 25055, 26: 25466, 27: 8134, 28: 8143, 29: 8151, 30: 8157, 31: 6986,
    32: 7695, 33: 8167, 34: 8639, 35: 9346, 36: 2602, 37: 4146, 38: 4920, 39: 5830, 40: 4674,
    41: 3900, 42: 10390, 43: 11287, 44: 12061, 45: 13481, 46: 12331, 47: 11557, 48: 5522,
    49: 6026, 50: 7355, 51: 8181, 52: 9007, 53: 10329, 54: 10857, 55: 9730, 56: 8670,
    57: 8199, 58: 7726, 59: 6898, 60: 6291, 61: 7364, 62: 8190, 63: 9016, 64: 10088,
    65: 8663, 66: 8191, 67: 7719,
}
_BFM_HEAD = {
    8: 47846, 30: 8156, 36: 2602, 39: 5830, 42: 10390, 45: 13481, 48: 5522, 49: 6026,
    50: 7355, 51: 8181, 52: 9007, 53: 10329, 54: 10857, 55: 9730, 56: 8670, 57: 8199,
    58: 7726, 59: 6898, 60: 6291, 61: 7364, 62: 8190, 63: 9016, 64: 10088, 65: 8663,
    66: 8191, 67: 7719,
}
_BFM_HEAD_CONTOUR = {
    "right_contour": [22451, 22463, 22231, 21961, 21591, 21737, 23037, 43151, 44368, 45617, 46999],
    "left_contour": [31991, 32002, 32272, 32795, 33069, 33088, 32329, 52325, 50233, 49299, 48560],
}
PUBLISHED: dict[tuple[int, int], tuple[str, dict[int, int], dict[str, list[int]] | None]] = {
    (28588, 56572): ("published: abdallahdib/NextFace landmark_68.txt (BFM 2017 face12)", _FACE12, None),
    (53149, 105694): ("published: patrikhuber/eos ibug_to_bfm2017-1_bfm_nomouth.txt", _BFM_HEAD, _BFM_HEAD_CONTOUR),
}


def ibug68(folder: Path, mean: np.ndarray, faces: np.ndarray) -> tuple[LandmarkAssociation | None, str]:
    """The ibug-68 association for a model and where it came from (see the module docstring).

    ``mean [N,3]`` in mm (Basel axes), ``faces [F,3]``. Returns ``(None, reason)`` when the
    topology is unknown and the folder has no landmark file.
    """
    n = mean.shape[0]
    fixed: dict[int, int] | None = None
    contour: dict[str, list[int]] | None = None
    source = ""
    path = folder / LANDMARK_FILE
    if path.is_file():
        fixed, source = _read_pairs(path, n), f"model folder: {LANDMARK_FILE}"
    else:
        published = PUBLISHED.get((n, faces.shape[0]))
        if published is not None and _plausible(published[1], mean):
            source, fixed, contour = published[0], dict(published[1]), published[2]
    if fixed is None:
        return None, "no landmarks_ibug68.txt in the model folder and not a known BFM 2017 topology"
    contour_path = folder / CONTOUR_FILE
    if contour_path.is_file():
        contour, contour_source = _read_contour(contour_path, n), f"model folder: {CONTOUR_FILE}"
    elif contour is not None:
        contour_source = "published"
    else:
        contour, contour_source = computed_contour(mean, fixed), "computed from the mean shape"
    candidates: dict[int, torch.Tensor] = {}
    for side, indices in (("right_contour", RIGHT_JAW), ("left_contour", LEFT_JAW)):
        chain = torch.tensor(contour[side], dtype=torch.int64)
        for i in indices:
            candidates[i] = chain
    keys = sorted(k for k in fixed if k not in candidates)
    association = LandmarkAssociation(
        landmark_index=torch.tensor(keys, dtype=torch.int64),
        vertex_index=torch.tensor([fixed[k] for k in keys], dtype=torch.int64),
        contour=candidates,
    )
    return association, f"{source}; jaw contour {contour_source}"


def _plausible(fixed: dict[int, int], mean: np.ndarray) -> bool:
    """The published indices fit this mean: nose tip near the front, right eye at -x, left at +x."""
    if max(fixed.values()) >= mean.shape[0]:
        return False
    nose, right_eye, left_eye = mean[fixed[30]], mean[fixed[36]], mean[fixed[45]]
    return bool(mean[:, 2].max() - nose[2] < 10.0 and right_eye[0] < 0 < left_eye[0])


def _read_pairs(path: Path, n: int) -> dict[int, int]:
    pairs: dict[int, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise InputError(f"{path}:{number}: expected 'ibug index <TAB> vertex index', got {line!r}", "fix that line")
        landmark, vertex = int(parts[0]), int(parts[1])
        if landmark > 67 or vertex >= n:
            raise InputError(
                f"{path}:{number}: landmark {landmark} / vertex {vertex} out of range (0..67 / 0..{n - 1})",
                "the file must match this model's mesh",
            )
        pairs[landmark] = vertex
    return pairs


def _read_contour(path: Path, n: int) -> dict[str, list[int]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        contour = {side: [int(v) for v in data[side]] for side in ("right_contour", "left_contour")}
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: expected {{'right_contour': [...], 'left_contour': [...]}}: {exc}", "fix the file") from None
    if any(v < 0 or v >= n for chain in contour.values() for v in chain):
        raise InputError(f"{path}: a contour vertex is out of range 0..{n - 1}", "the file must match this model's mesh")
    return contour


def computed_contour(mean: np.ndarray, fixed: dict[int, int]) -> dict[str, list[int]]:
    """Jaw-contour candidates from the mean ``[N,3]`` (mm): every vertex that is the outermost
    one of a 4 mm height slice, from 5 mm below the chin to 25 mm above the eyes (ear
    level), under some yaw in -30°..60°.
    Each side's list runs from the top (ear) to the chin."""
    y = mean[:, 1]
    chin_y = mean[fixed[CHIN], 1] if CHIN in fixed else y.min()
    eye_y = mean[[fixed[i] for i in (36, 45) if i in fixed], 1].mean() if 36 in fixed or 45 in fixed else mean[mean[:, 2].argmax(), 1] + 30.0
    bottom, top = chin_y - 5.0, eye_y + 25.0  # the jaw line runs from below the chin to the ear
    index = np.flatnonzero((y >= bottom) & (y <= top))
    slices = np.floor((y[index] - bottom) / 4.0).astype(np.int64)
    result: dict[str, list[int]] = {}
    for side, sign in (("right_contour", -1.0), ("left_contour", 1.0)):
        found: set[int] = set()
        for degrees in range(-30, 61, 5):  # 19 yaw angles, each fully vectorised
            t = np.radians(degrees)
            outward = sign * mean[index, 0] * np.cos(t) - mean[index, 2] * np.sin(t)
            order = np.lexsort((-outward, slices))
            _, first = np.unique(slices[order], return_index=True)
            found.update(index[order[first]].tolist())
        chain = np.array(sorted(v for v in found if sign * mean[v, 0] > 0), dtype=np.int64)
        result[side] = chain[np.argsort(-mean[chain, 1], kind="stable")].tolist()
    return result
