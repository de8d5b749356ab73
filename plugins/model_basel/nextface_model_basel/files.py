"""Finding and reading the Basel Face Model 2017 and AlbedoMM HDF5 files, with checks.

Every group of both files has the statismo layout::

    <group>/model/mean           (3N,)   interleaved x0 y0 z0 x1 ... (or r g b per vertex)
    <group>/model/pcaBasis       (3N, K) columns orthonormal
    <group>/model/pcaVariance    (K,)    variance of each component
    <group>/representer/points   (3, N)  the reference mesh
    <group>/representer/cells    (3, F)  uint32 triangles

BFM 2017 groups: ``shape``, ``expression`` (and ``color``, which NextFace does not use: the
reflectance comes from AlbedoMM); AlbedoMM groups: ``diffuseAlbedo``, ``specularAlbedo``.
What is checked rather than assumed: every dataset's shape, the interleaved layout of
``mean`` (against ``representer/points``), that all groups share one topology, and that
the basis columns are orthonormal (or, as some conversions store them, scaled by the
standard deviations, which is undone).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nextface_core.errors import InputError

BFM_URL = "https://faces.dmi.unibas.ch/bfm/bfm2017.html"
ALBEDO_URL = "https://github.com/waps101/AlbedoMM/releases"

#: accepted BFM 2017 shape files, in order of preference, and the AlbedoMM file on the same mesh
SHAPE_FILES: dict[str, str] = {
    "model2017-1_face12_nomouth.h5": "albedoModel2020_face12_albedoPart.h5",
    "model2017-1_bfm_nomouth.h5": "albedoModel2020_bfm_albedoPart.h5",
}

ORTHONORMAL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class PcaGroup:
    """One statismo PCA model as read: ``mean [N,3]``, ``basis [K,N,3]`` (orthonormal
    columns of the flattened ``[3N]`` vectors), ``var [K]``, ``faces [F,3]`` int64."""

    name: str
    mean: np.ndarray
    basis: np.ndarray
    var: np.ndarray
    faces: np.ndarray
    basis_storage: str  # "orthonormal" or "scaled by sqrt(variance)"


def find_model_files(folder: Path) -> tuple[Path, Path]:
    """The BFM 2017 shape file and its AlbedoMM file in ``folder``; :class:`InputError` naming
    the file, the folder searched and where to download it when one is missing."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(
            f"model folder {folder} does not exist",
            f"create it and put model2017-1_face12_nomouth.h5 (from {BFM_URL}) and "
            f"albedoModel2020_face12_albedoPart.h5 (from {ALBEDO_URL}) in it, or set model.path / --path",
        )
    for shape_name, albedo_name in SHAPE_FILES.items():
        shape = folder / shape_name
        if shape.is_file():
            albedo = folder / albedo_name
            if not albedo.is_file():
                raise InputError(
                    f"AlbedoMM file {albedo_name} not found in {folder} (needed with {shape_name})",
                    f"download {albedo_name} from {ALBEDO_URL} into {folder}",
                )
            return shape, albedo
    names = " or ".join(SHAPE_FILES)
    raise InputError(
        f"Basel Face Model 2017 file {names} not found in {folder}",
        f"request and download model2017-1_face12_nomouth.h5 from {BFM_URL} into {folder} "
        f"(or set model.path / --path to the folder that holds it)",
    )


def read_groups(path: Path, groups: tuple[str, ...]) -> dict[str, PcaGroup]:
    """Read and check ``groups`` of one statismo HDF5 file. Truncated, corrupt or mis-laid-out
    files raise :class:`InputError` naming the file, the dataset and the shape found."""
    import h5py

    source = _source_hint(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path} is not a readable HDF5 file (truncated or corrupt?): {exc}", source) from None
    try:
        with handle:
            return {g: _read_group(handle, path, g) for g in groups}
    except (OSError, RuntimeError, KeyError) as exc:
        raise InputError(f"{path} could not be read (truncated or corrupt?): {exc}", source) from None


def _source_hint(path: Path) -> str:
    url = ALBEDO_URL if path.name.startswith("albedoModel") else BFM_URL
    return f"download {path.name} again from {url}"


def _dataset(handle, path: Path, name: str) -> np.ndarray:
    if name not in handle:
        raise InputError(f"{path}: dataset '{name}' is missing; this is not a BFM 2017 / AlbedoMM file", _source_hint(path))
    return np.asarray(handle[name][()])


def _layout_error(path: Path, name: str, got: tuple, expected: str) -> InputError:
    return InputError(f"{path}: dataset '{name}' has shape {got}, expected {expected}", _source_hint(path))


def _read_group(handle, path: Path, group: str) -> PcaGroup:
    mean = _dataset(handle, path, f"{group}/model/mean").astype(np.float32)
    basis = _dataset(handle, path, f"{group}/model/pcaBasis").astype(np.float32)
    var = _dataset(handle, path, f"{group}/model/pcaVariance").astype(np.float64)
    points = _dataset(handle, path, f"{group}/representer/points")
    cells = _dataset(handle, path, f"{group}/representer/cells")
    if points.ndim != 2 or points.shape[0] != 3:
        raise _layout_error(path, f"{group}/representer/points", points.shape, "(3, N)")
    n = points.shape[1]
    if mean.shape != (3 * n,):
        raise _layout_error(path, f"{group}/model/mean", mean.shape, f"(3N,) = ({3 * n},)")
    if basis.ndim != 2 or basis.shape[0] != 3 * n or basis.shape[1] < 1:
        raise _layout_error(path, f"{group}/model/pcaBasis", basis.shape, f"(3N, K) = ({3 * n}, K)")
    k = basis.shape[1]
    if var.shape != (k,):
        raise _layout_error(path, f"{group}/model/pcaVariance", var.shape, f"(K,) = ({k},)")
    if cells.ndim != 2 or cells.shape[0] != 3:
        raise _layout_error(path, f"{group}/representer/cells", cells.shape, "(3, F)")
    if cells.size and int(cells.max()) >= n:
        raise InputError(f"{path}: '{group}/representer/cells' indexes vertex {int(cells.max())} but there are {n}", _source_hint(path))
    if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(basis)) or not np.all(var >= 0):
        raise InputError(f"{path}: '{group}' has non-finite values or negative variances", _source_hint(path))
    if group in ("shape",):
        _check_interleaved(path, group, mean, points.astype(np.float64))
    basis, storage = _orthonormal(path, group, basis, var)
    return PcaGroup(
        name=group,
        mean=mean.reshape(n, 3),
        basis=np.ascontiguousarray(basis.T.reshape(k, n, 3)),
        var=var,
        faces=np.ascontiguousarray(cells.T.astype(np.int64)),
        basis_storage=storage,
    )


def _check_interleaved(path: Path, group: str, mean: np.ndarray, points: np.ndarray) -> None:
    """``mean`` must be x0 y0 z0 x1 ... : closer to ``points.T`` than the planar reading."""
    n = points.shape[1]
    interleaved = np.abs(mean.reshape(n, 3) - points.T).mean()
    planar = np.abs(mean.reshape(3, n) - points).mean()
    if interleaved > planar:
        raise InputError(
            f"{path}: '{group}/model/mean' is not stored per vertex (x, y, z) like the reference mesh",
            _source_hint(path),
        )


def _orthonormal(path: Path, group: str, basis: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, str]:
    """Check the ``(3N,K)`` basis: orthonormal columns (BFM 2017 / statismo), or orthogonal
    columns of norm ``sqrt(var)`` (a scaled basis), which are normalised here."""
    gram = basis.T.astype(np.float64) @ basis.astype(np.float64)
    norms = np.sqrt(np.diag(gram))
    off = gram / np.outer(np.maximum(norms, 1e-30), np.maximum(norms, 1e-30)) - np.eye(len(norms))
    if np.abs(off).max() > ORTHONORMAL_TOLERANCE:
        raise InputError(
            f"{path}: '{group}/model/pcaBasis' columns are not orthogonal (max |cos| = {np.abs(off).max():.3g})",
            _source_hint(path),
        )
    if np.abs(norms - 1.0).max() <= ORTHONORMAL_TOLERANCE:
        return basis, "orthonormal"
    if np.abs(norms / np.sqrt(np.maximum(var, 1e-30)) - 1.0).max() <= ORTHONORMAL_TOLERANCE:
        return (basis / norms[None, :]).astype(np.float32), "scaled by sqrt(variance)"
    raise InputError(
        f"{path}: '{group}/model/pcaBasis' column norms ({norms.min():.4g}..{norms.max():.4g}) are neither 1 "
        "nor sqrt(pcaVariance)",
        _source_hint(path),
    )
