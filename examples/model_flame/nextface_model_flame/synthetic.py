"""A small synthetic model written in FLAME's file layouts, for tests (the real FLAME needs
a registration and cannot ship with NextFace).

The geometry is the core's synthetic face (:func:`nextface_core.synthetic.synthetic_model`,
"small": 532 vertices), converted to FLAME's conventions: metres, ``shapedirs`` of
``[N,3,400]`` with the identity components first and zero columns padding them to 300, then
the expression components padded to 100, each blendshape scaled by its standard deviation
(FLAME's coefficients are in standard deviations). ``f`` is uint32 and ``J_regressor`` a
scipy CSC matrix, as in the real file; pose data are present but neutral.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import torch

from nextface_core.synthetic import synthetic_model

from .loader import LANDMARK_FILE, METRES_TO_MM, MODEL_FILES, SHAPE_COLUMNS, STATIC_IBUG

EXPRESSION_COLUMNS = 100
JOINTS = 5  # global, neck, jaw, left eye, right eye
POSE_COLUMNS = 36  # 4 non-root joints × 9 rotation-matrix entries


@dataclass(frozen=True)
class SyntheticFlameFiles:
    """Paths written by :func:`write_synthetic_flame`."""

    folder: Path
    model: Path
    landmarks: Path


def _padded(basis: torch.Tensor, var: torch.Tensor, columns: int) -> np.ndarray:
    """``basis [K,N,3]`` scaled by ``sqrt(var)`` → ``[N,3,columns]`` metres, zero-padded."""
    scaled = (basis * var.sqrt()[:, None, None]).permute(1, 2, 0).numpy() / METRES_TO_MM
    out = np.zeros((*scaled.shape[:2], columns))
    out[..., : scaled.shape[2]] = scaled
    return out


def synthetic_flame_arrays(seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model dict and the static landmark-embedding dict, in FLAME's layout."""
    model = synthetic_model("small", seed=seed, dtype=torch.float64)
    n = model.n_vertices
    faces = model.faces.numpy()
    shapedirs = np.concatenate(
        [
            _padded(model.shape_basis, model.shape_var, SHAPE_COLUMNS),
            _padded(model.expression_basis, model.expression_var, EXPRESSION_COLUMNS),
        ],
        axis=2,
    )
    template = model.shape_mean.numpy() / METRES_TO_MM
    joints = np.stack([template.mean(0)] * JOINTS)
    regressor = scipy.sparse.csc_matrix(np.full((JOINTS, n), 1.0 / n))
    flame = {
        "v_template": template,
        "shapedirs": shapedirs,
        "f": faces.astype(np.uint32),
        "posedirs": np.zeros((n, 3, POSE_COLUMNS)),
        "J_regressor": regressor,
        "J": joints,
        "weights": np.eye(JOINTS)[np.zeros(n, dtype=np.int64)],
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    assoc = model.landmarks["ibug68"]
    vertex_of = dict(zip(assoc.landmark_index.tolist(), assoc.vertex_index.tolist()))
    face_idx, bary = [], []
    for ibug in STATIC_IBUG:
        v = vertex_of[ibug]
        f = int(np.flatnonzero((faces == v).any(1))[0])
        weights = np.full(3, 0.15)
        weights[int(np.flatnonzero(faces[f] == v)[0])] = 0.7  # the landmark's vertex weighs most
        face_idx.append(f)
        bary.append(weights)
    embedding = {"lmk_face_idx": np.array(face_idx, dtype=np.int64), "lmk_b_coords": np.array(bary)}
    return flame, embedding


def write_synthetic_flame(folder: str | Path, seed: int = 0, model: dict[str, Any] | None = None) -> SyntheticFlameFiles:
    """Write ``generic_model.pkl`` and ``flame_static_embedding.pkl`` into ``folder``
    (protocol 2, as FLAME's own files); ``model`` replaces the model dict (tests of damaged
    or chumpy-style files)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    flame, embedding = synthetic_flame_arrays(seed)
    files = SyntheticFlameFiles(folder, folder / MODEL_FILES[0], folder / LANDMARK_FILE)
    files.model.write_bytes(pickle.dumps(flame if model is None else model, protocol=2))
    files.landmarks.write_bytes(pickle.dumps(embedding, protocol=2))
    return files
