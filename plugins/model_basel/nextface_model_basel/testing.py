"""Test helpers of the Basel plugin: the core's synthetic face written in the Basel file layouts.

:func:`write_synthetic_basel` writes :func:`nextface_core.synthetic.synthetic_arrays` as the
Basel 2017 + AlbedoMM HDF5 files (plus the ibug-68 landmark table and the jaw-contour
chains), so the loader, the CLI and the dataset runner can be tested without the licensed
Basel files. h5py, which writes them, is this plugin's dependency, not the core's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from nextface_core.synthetic import synthetic_arrays

MODEL_FILE = "model2017-1_face12_nomouth.h5"
ALBEDO_FILE = "albedoModel2020_face12_albedoPart.h5"
LANDMARKS_FILE = "landmarks_ibug68.txt"
CONTOUR_FILE = "contour_vertices.json"


@dataclass(frozen=True)
class SyntheticBaselFiles:
    """Paths of the files written by :func:`write_synthetic_basel` (all in ``folder``)."""

    folder: Path
    model: Path
    albedo: Path
    landmarks: Path
    contour: Path


def write_synthetic_basel(folder: Path | str, size: str = "small", seed: int = 0) -> SyntheticBaselFiles:
    """Write the synthetic model into ``folder`` in the Basel 2017 + AlbedoMM file layouts.

    Files: ``model2017-1_face12_nomouth.h5`` (groups ``shape``, ``expression``, ``color``),
    ``albedoModel2020_face12_albedoPart.h5`` (``diffuseAlbedo``, ``specularAlbedo``), each group
    with ``model/{mean [3N], pcaBasis [3N,K], pcaVariance [K], noiseVariance []}`` float32 and
    ``representer/{points [3,N] float32, cells [3,F] uint32}``; ``landmarks_ibug68.txt``
    (ibug index, tab, vertex) and ``contour_vertices.json`` (jaw chains), as in the
    sfm-as-bfm test folder. ``size``: ``"small"`` (a few hundred vertices) or ``"full"``
    (the real BFM sizes). Deterministic for a ``seed``.
    """
    arrays = synthetic_arrays(size, seed, np.float32)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = SyntheticBaselFiles(
        folder, folder / MODEL_FILE, folder / ALBEDO_FILE, folder / LANDMARKS_FILE, folder / CONTOUR_FILE
    )
    points = np.ascontiguousarray(arrays.points.T, dtype=np.float32)
    cells = np.ascontiguousarray(arrays.faces.T, dtype=np.uint32)
    contents = ((files.model, ("shape", "expression", "color")), (files.albedo, ("diffuseAlbedo", "specularAlbedo")))
    for path, names in contents:
        with h5py.File(path, "w") as h5:
            for name in names:
                mean, basis, var = arrays.groups[name]
                h5[f"{name}/model/mean"] = mean.astype(np.float32, copy=False)
                h5[f"{name}/model/pcaBasis"] = basis.astype(np.float32, copy=False)
                h5[f"{name}/model/pcaVariance"] = var.astype(np.float32, copy=False)
                h5[f"{name}/model/noiseVariance"] = np.float32(0.0)
                h5[f"{name}/representer/points"] = points
                h5[f"{name}/representer/cells"] = cells
    lines = ["# ibug-68 index (0-based)\tvertex index"]
    lines += [f"{lm}\t{v}" for lm, v in sorted(arrays.landmarks.items())]
    files.landmarks.write_text("\n".join(lines) + "\n", encoding="utf-8")
    contour = {"right_contour": arrays.right_contour.tolist(), "left_contour": arrays.left_contour.tolist()}
    files.contour.write_text(json.dumps(contour, indent=1) + "\n", encoding="utf-8")
    return files


__all__ = ["ALBEDO_FILE", "CONTOUR_FILE", "LANDMARKS_FILE", "MODEL_FILE", "SyntheticBaselFiles", "write_synthetic_basel"]
