"""Load BFM 2017 + AlbedoMM into a :class:`MorphableModel`, through a memory-mapped cache.

Cold load: read and check both HDF5 files, find units and axes, read the vertex symmetry
map from ``symmetry.txt`` in the model folder (one line per vertex: the index of its mirror
vertex; ``#`` comments) or compute it from the mean shape, compute the UV parametrisation, and write every array as an ``.npy`` file (plus ``meta.json``)
into ``<cache dir>/<key>/``, where ``key`` is the SHA-256 of the format version and both
files' contents (and ``symmetry.txt``'s when present). Warm load: hash the files, memory-map the ``.npy`` files (copy-on-write,
no copy until written) and never open the HDF5. A changed file changes the key, so it is
read again; stale entries are left for the user to delete.

Conventions of the result (see :class:`nextface_core.model.MorphableModel`):

- ``shape_mean`` is the BFM shape mean plus the expression model's mean (BFM 2017 stores
  the neutral-to-mean-expression offset as the expression mean), in millimetres;
- each basis is ``[K,N,3]``: column ``k`` of the file's ``(3N,K)`` ``pcaBasis`` reshaped per
  vertex; columns are orthonormal, ``var`` holds ``pcaVariance`` (times scale² when the file
  is not in mm), so a sample is ``mean + sum_k c_k sqrt(var_k) basis_k`` with ``c ~ N(0,1)``;
- diffuse and specular albedo come from AlbedoMM (linear RGB).

Cache folder: ``basel/`` in NextFace's cache folder (``$NEXTFACE_CACHE_DIR`` if set, else the
per-user cache dir; :mod:`nextface_core.cache`).
Model folder: ``config.model.path``, else the per-user data dir.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nextface_core.cache import cache_dir
from nextface_core.errors import ConfigError, InputError
from nextface_core.mesh import check_frame, symmetry_map
from nextface_core.model import MorphableModel
from nextface_core import uvmap
from nextface_core.uvmap import symmetric_uv, uv_quality

from .files import find_model_files, read_groups
from .landmarks import ibug68

CACHE_FORMAT = 2  # bump whenever the cached arrays or meta change (the UV method has its own version)
SYMMETRY_FILE = "symmetry.txt"
_ARRAYS = (
    "shape_mean", "shape_basis", "shape_var", "expression_basis", "expression_var",
    "diffuse_mean", "diffuse_basis", "diffuse_var", "specular_mean", "specular_basis",
    "specular_var", "faces", "uv", "symmetry",
)


def default_model_dir() -> Path:
    """Where models live when ``model.path`` is empty: ``<user data dir>/nextface/basel``."""
    import platformdirs

    return platformdirs.user_data_path("nextface") / "basel"


def cache_root() -> Path:
    """The Basel cache: ``basel/`` in NextFace's cache folder (:func:`nextface_core.cache.cache_root`)."""
    return cache_dir("basel")


@dataclass
class LoadInfo:
    """How a load went and what the checks found (for ``nextface model info``)."""

    folder: Path
    files: list[str]
    cache_path: Path
    cache_hit: bool
    seconds: float
    meta: dict = field(default_factory=dict)
    landmark_source: dict[str, str] = field(default_factory=dict)


def load_basel(
    folder: str | Path | None = None,
    *,
    n_shape: int = 0,
    n_expression: int = 0,
    n_albedo: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[MorphableModel, LoadInfo]:
    """Load the model in ``folder`` (default :func:`default_model_dir`), keep the first
    ``n_*`` components of each basis (0 = all) and move it to ``device``/``dtype``.

    Raises :class:`InputError` for missing, truncated or mis-laid-out files and
    :class:`ConfigError` for a component count larger than the model has.
    """
    start = time.perf_counter()
    folder = Path(folder).expanduser() if folder else default_model_dir()
    shape_file, albedo_file = find_model_files(folder)
    symmetry_file = folder / SYMMETRY_FILE
    symmetry_file = symmetry_file if symmetry_file.is_file() else None
    key = _content_key((shape_file, albedo_file) + ((symmetry_file,) if symmetry_file else ()))
    entry = cache_root() / key
    hit = (entry / "meta.json").is_file()
    if hit:
        try:
            meta, arrays = _open_entry(entry)
        except (OSError, ValueError):  # a damaged entry (file deleted or cut short): rebuild it
            shutil.rmtree(entry, ignore_errors=True)
            hit = False
    if not hit:
        _build_cache(shape_file, albedo_file, symmetry_file, entry)
        meta, arrays = _open_entry(entry)
    mean = arrays["shape_mean"].numpy()
    association, lm_source = ibug68(folder, mean, arrays["faces"].numpy())
    model = MorphableModel(
        **arrays,
        landmarks={"ibug68": association} if association is not None else {},
        name=f"basel:{shape_file.stem}",
        units="mm",
    )
    model = _truncate(model, n_shape, n_expression, n_albedo)
    if torch.device(device) != model.device or dtype != model.dtype:
        model = model.to(device, dtype)
    info = LoadInfo(
        folder=folder,
        files=[shape_file.name, albedo_file.name],
        cache_path=entry,
        cache_hit=hit,
        seconds=time.perf_counter() - start,
        meta=meta,
        landmark_source={"ibug68": lm_source},
    )
    return model, info


def _open_entry(entry: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """``meta.json`` and every array of a cache entry, memory-mapped copy-on-write."""
    meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
    arrays = {name: torch.from_numpy(np.load(entry / f"{name}.npy", mmap_mode="c")) for name in _ARRAYS}
    return meta, arrays


def _truncate(model: MorphableModel, n_shape: int, n_expression: int, n_albedo: int) -> MorphableModel:
    for key, want, have in (
        ("model.shape_components", n_shape, model.n_shape),
        ("model.expression_components", n_expression, model.n_expression),
        ("model.albedo_components", n_albedo, model.n_albedo),
    ):
        if want > have:
            raise ConfigError(f"{key} = {want} but the Basel model has {have} components", f"use 0 (all) or at most {have}")
    return model.truncated(n_shape, n_expression, n_albedo)


def _content_key(paths: tuple[Path, ...]) -> str:
    """SHA-256 over the cache format, the UV method's version and each file's name and content."""
    total = hashlib.sha256(f"nextface-basel-cache-v{CACHE_FORMAT}-uv{uvmap.METHOD_VERSION}".encode())
    for path in paths:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 23), b""):
                digest.update(chunk)
        total.update(f"{path.name}:{digest.hexdigest()}".encode())
    return total.hexdigest()[:32]


def _read_symmetry(path: Path, n: int) -> torch.Tensor:
    """``symmetry.txt``: N lines, line i the mirror vertex of vertex i (``#`` comments)."""
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    values = [ln for ln in lines if ln]
    if len(values) != n or not all(v.isdigit() for v in values):
        raise InputError(
            f"{path}: expected {n} lines with one vertex index each, got {len(values)} entries",
            "write the mirror vertex of vertex i on line i, or delete the file to compute the map",
        )
    symmetry = torch.tensor([int(v) for v in values], dtype=torch.int64)
    if int(symmetry.max()) >= n:
        raise InputError(f"{path}: vertex index {int(symmetry.max())} out of range 0..{n - 1}", "the file must match this mesh")
    return symmetry


def _same_triangles(a: np.ndarray, b: np.ndarray) -> bool:
    """The same set of triangles over the same vertex numbering, in any order."""
    if a.shape != b.shape:
        return False

    def canonical(f: np.ndarray) -> np.ndarray:
        f = np.sort(f, axis=1)
        return f[np.lexsort(f.T[::-1])]

    return bool(np.array_equal(a, b) or np.array_equal(canonical(a), canonical(b)))


def _build_cache(shape_file: Path, albedo_file: Path, symmetry_file: Path | None, entry: Path) -> None:
    """Read, check and convert both files, then write ``entry`` atomically (temp dir + rename)."""
    bfm = read_groups(shape_file, ("shape", "expression"))
    albedo = read_groups(albedo_file, ("diffuseAlbedo", "specularAlbedo"))
    shape, expression = bfm["shape"], bfm["expression"]
    n, faces = shape.mean.shape[0], shape.faces
    for path, group in ((shape_file, expression), (albedo_file, albedo["diffuseAlbedo"]), (albedo_file, albedo["specularAlbedo"])):
        if group.mean.shape[0] != n or not _same_triangles(group.faces, faces):
            raise InputError(
                f"{path}: group '{group.name}' has {group.mean.shape[0]} vertices / {len(group.faces)} triangles, "
                f"but {shape_file.name} has {n} / {len(faces)}"
                + (" (same counts, different triangles)" if group.mean.shape[0] == n and len(group.faces) == len(faces) else ""),
                "use the AlbedoMM file made for the same BFM mesh (face12 with face12, bfm with bfm)",
            )
    neutral = shape.mean + expression.mean
    frame = check_frame(neutral, faces, str(shape_file))
    s = frame.scale
    mean_mm = torch.from_numpy((neutral * s).astype(np.float32))
    if symmetry_file is not None:
        symmetry = _read_symmetry(symmetry_file, n)
        mirrored = mean_mm[symmetry] * torch.tensor([-1.0, 1.0, 1.0])
        residual, symmetry_source = (mirrored - mean_mm).norm(dim=1), f"model folder: {SYMMETRY_FILE}"
    else:
        (symmetry, residual), symmetry_source = symmetry_map(mean_mm), "computed: nearest mirrored vertex"
    faces_t = torch.from_numpy(faces)
    uv = symmetric_uv(mean_mm.double(), faces_t, symmetry).float()
    quality = uv_quality(uv, mean_mm.double(), faces_t, symmetry)
    arrays = {
        "shape_mean": mean_mm.numpy(),
        "shape_basis": shape.basis,
        "shape_var": (shape.var * s * s).astype(np.float32),
        "expression_basis": expression.basis,
        "expression_var": (expression.var * s * s).astype(np.float32),
        "diffuse_mean": albedo["diffuseAlbedo"].mean,
        "diffuse_basis": albedo["diffuseAlbedo"].basis,
        "diffuse_var": albedo["diffuseAlbedo"].var.astype(np.float32),
        "specular_mean": albedo["specularAlbedo"].mean,
        "specular_basis": albedo["specularAlbedo"].basis,
        "specular_var": albedo["specularAlbedo"].var.astype(np.float32),
        "faces": faces,
        "uv": uv.numpy(),
        "symmetry": symmetry.numpy(),
    }
    if albedo["diffuseAlbedo"].basis.shape[0] != albedo["specularAlbedo"].basis.shape[0]:
        raise InputError(
            f"{albedo_file}: diffuseAlbedo has {albedo['diffuseAlbedo'].basis.shape[0]} components but specularAlbedo "
            f"{albedo['specularAlbedo'].basis.shape[0]}",
            f"download {albedo_file.name} again",
        )
    meta = {
        "format": CACHE_FORMAT,
        "files": [shape_file.name, albedo_file.name],
        "units_in_file": frame.units,
        "scale_to_mm": frame.scale,
        "extent_mm": frame.extent_mm,
        "axes": frame.axes,
        "mirror_residual_mm": frame.mirror_residual_mm,
        "symmetry_source": symmetry_source,
        "symmetry_max_distance_mm": float(residual.max()),
        "basis_storage": {g.name: g.basis_storage for g in (shape, expression, albedo["diffuseAlbedo"], albedo["specularAlbedo"])},
        "uv": quality.as_dict(),
    }
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        (staging / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            staging.rename(entry)
        except OSError:  # another process finished the same entry first
            if not (entry / "meta.json").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
