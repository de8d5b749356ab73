"""FLAME's generic model file → :class:`nextface_core.model.MorphableModel`.

What is read (FLAME 2020/2023 layout, a Python pickle of a dict, loaded with
:mod:`.safe_pickle` so it cannot run code):

- ``v_template [5023,3]`` the mean head, ``f [9976,3]`` its triangles;
- ``shapedirs [5023,3,400]``: columns 0–299 are identity (shape), 300–399 expression
  blendshapes, already scaled so the coefficients are in standard deviations (variances 1);
- ``posedirs``, ``J_regressor``, ``weights``, ``kintree_table``: read but unused, because
  the head, neck, jaw and eye joints stay at FLAME's zero pose (the fit's rigid rotation
  replaces the global one). **Jaw and neck pose are fixed**: an open mouth can only be
  approximated by the expression blendshapes.

The landmark embedding (``flame_static_embedding.pkl``: ``lmk_face_idx [51]`` triangles and
``lmk_b_coords [51,3]`` barycentric weights of ibug-68 points 17–67; or DECA's
``landmark_embedding.npy``, a pickled dict read by the same restricted unpickler, whose
``full_lmk_faces_idx``/``full_lmk_bary_coords`` cover all 68) becomes a vertex per landmark:
the triangle corner with the largest weight. FLAME's dynamic jaw-contour embedding is not
used, so with the static file the jaw-line landmarks 0–16 are not fitted (DECA's file gives
fixed jaw-line vertices instead).

Conversions: FLAME is in metres with y up and +z out of the face; NextFace's model space
is Basel's (millimetres, same axes), so positions and blendshapes are scaled by 1000.

Reflectance: the FLAME model file has no albedo model. The loader supplies a **flat skin
tone** (``skin_color``, sRGB) with one basis component per colour channel (so the fit can
adjust the overall skin colour, ±0.1 linear per standard deviation) and a constant grey
specular albedo; stage 3's per-texel maps then add the detail.

UV: from a texture file when given (``texture_file``: an ``.npz`` with ``vt [V,2]`` and
``ft [F,3]``, e.g. FLAME's ``FLAME_texture.npz``, read with ``allow_pickle=False``; or an
OBJ with ``f v/vt`` faces, e.g. FLAME's ``head_template.obj``).
FLAME's layout has seams (V > N), so each vertex takes one of its texture coordinates and
triangles across a seam stretch over the texture. Without a texture file the core's
mirror-symmetric parametrisation (:func:`nextface_core.uvmap.symmetric_uv`) is computed;
it needs a mesh that is a disc with holes (a face mask), so the full FLAME head with
separate eyeballs needs the texture file.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from nextface_core.color import srgb_to_linear
from nextface_core.errors import InputError
from nextface_core.options import option
from nextface_core.mesh import symmetry_map
from nextface_core.model import LandmarkAssociation, MorphableModel
from nextface_core.uvmap import symmetric_uv

from .safe_pickle import UnsafePickleError, load_arrays

#: file names of the FLAME model, tried in this order when ``model_file`` is not set
MODEL_FILES = ("generic_model.pkl", "flame2023.pkl", "flame2020.pkl")
LANDMARK_FILE = "flame_static_embedding.pkl"
#: identity columns of ``shapedirs``; the rest are expression blendshapes
SHAPE_COLUMNS = 300
METRES_TO_MM = 1000.0
#: ibug-68 indices of the 51 static landmarks (eyebrows, nose, eyes, mouth)
STATIC_IBUG = tuple(range(17, 68))
DIFFUSE_STD = 0.1  # linear albedo change per standard deviation of each colour component
SPECULAR_MEAN = 0.05
SPECULAR_STD = 0.02
#: largest mirror-vertex distance (mm) for which the nearest-vertex symmetry map is kept
SYMMETRY_TOLERANCE_MM = 1.0
DOWNLOAD_HINT = "download FLAME from https://flame.is.tue.mpg.de (free registration) and pass its folder with --model-path"


@dataclass(frozen=True)
class FlameOptions:
    """``[plugins.model_flame]`` options: file names inside the model folder and the skin tone."""

    model_file: str = option("", "model pickle in the folder; empty = the first of " + ", ".join(MODEL_FILES))
    landmark_file: str = option(LANDMARK_FILE, "landmark embedding (.pkl or .npy) in the folder")
    texture_file: str = option("", "UV layout: head_template.obj or an .npz with vt/ft; empty = computed from the mesh")
    skin_color: tuple[float, float, float] = option((0.78, 0.6, 0.5), "sRGB of the flat albedo", min=0.0, max=1.0)


def _read_pickle(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"the FLAME {what} {path} does not exist", DOWNLOAD_HINT)
    try:
        return load_arrays(path)
    except UnsafePickleError as exc:
        raise InputError(f"{path} is not a plain FLAME {what}: {exc}", "use the files of the official FLAME download") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise InputError(f"{path} cannot be read as a FLAME {what}: {type(exc).__name__}: {exc}", DOWNLOAD_HINT) from None


def _array(arrays: Mapping[str, Any], key: str, source: Path, shape: tuple[int | None, ...]) -> np.ndarray:
    """``arrays[key]`` as a dense numpy array of ``shape`` (None: any size on that axis)."""
    if key not in arrays:
        raise InputError(f"{source} has no '{key}' entry (keys: {sorted(arrays)})", "this is not a FLAME file")
    value = arrays[key]
    a = np.asarray(value.toarray() if hasattr(value, "toarray") else value)
    if a.ndim != len(shape) or any(w is not None and g != w for g, w in zip(a.shape, shape)):
        want = "[" + ",".join("*" if w is None else str(w) for w in shape) + "]"
        raise InputError(f"{source}: '{key}' has shape {a.shape}, expected {want}", "this is not a FLAME file")
    return a


def _landmarks(path: Path, faces: np.ndarray) -> LandmarkAssociation:
    """ibug-68 association from a static (51 points) or full (68 points) embedding."""
    arrays = _read_pickle(path, "landmark embedding")
    if "full_lmk_faces_idx" in arrays:
        face_idx = _array(arrays, "full_lmk_faces_idx", path, (None, None)).reshape(-1)
        bary = _array(arrays, "full_lmk_bary_coords", path, (None, None, 3)).reshape(-1, 3)
        ibug = tuple(range(68))
    else:
        face_idx = _array(arrays, "lmk_face_idx", path, (None,))
        bary = _array(arrays, "lmk_b_coords", path, (None, 3))
        ibug = STATIC_IBUG
    if face_idx.shape[0] != len(ibug) or bary.shape[0] != len(ibug):
        raise InputError(
            f"{path}: {face_idx.shape[0]} landmark triangles and {bary.shape[0]} weights, expected {len(ibug)}",
            "use FLAME's flame_static_embedding.pkl",
        )
    if face_idx.min() < 0 or face_idx.max() >= faces.shape[0]:
        raise InputError(f"{path}: landmark triangles outside [0, {faces.shape[0]})", "the embedding belongs to another mesh")
    vertex = faces[face_idx.astype(np.int64), bary.argmax(1)]
    return LandmarkAssociation(torch.tensor(ibug, dtype=torch.int64), torch.from_numpy(vertex.astype(np.int64)))


def _obj_vt_ft(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``vt [V,2]`` and the texture index of each triangle corner ``ft [F,3]`` (0-based) of
    an OBJ whose faces are written ``f v/vt ...`` (FLAME's ``head_template.obj``)."""
    vt, ft = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        key, _, rest = line.strip().partition(" ")
        try:
            if key == "vt":
                vt.append([float(x) for x in rest.split()[:2]])
            elif key == "f":
                corners = rest.split()
                if len(corners) != 3 or any(c.count("/") < 1 or not c.split("/")[1] for c in corners):
                    raise ValueError("faces must be triangles written v/vt")
                ft.append([int(c.split("/")[1]) - 1 for c in corners])
        except ValueError as exc:
            raise InputError(f"{path} line {number}: {exc}", "give FLAME's template OBJ with texture coordinates") from None
    return np.array(vt, dtype=np.float64).reshape(-1, 2), np.array(ft, dtype=np.int64).reshape(-1, 3)


def _texture_uv(path: Path, faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Per-vertex uv (v from the top) from ``vt``/``ft`` of a texture-space ``.npz`` or an OBJ."""
    if not path.is_file():
        raise InputError(f"the FLAME texture file {path} does not exist", "fix [plugins.model_flame] texture_file or remove it")
    if path.suffix.lower() == ".obj":
        vt, ft = _obj_vt_ft(path)
    else:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("vt", "ft") if k not in npz.files]
            if missing:
                raise InputError(f"{path} has no {missing} arrays (keys: {npz.files})", "give a texture file with vt [V,2] and ft [F,3]")
            vt, ft = npz["vt"].astype(np.float64), npz["ft"].astype(np.int64)
    if ft.shape != faces.shape or vt.ndim != 2 or vt.shape[1] != 2 or ft.min() < 0 or ft.max() >= vt.shape[0]:
        raise InputError(f"{path}: ft {ft.shape} / vt {vt.shape} do not match the model's {faces.shape[0]} triangles", "use the texture file of this FLAME version")
    uv = np.full((n_vertices, 2), np.nan)
    uv[faces.reshape(-1)] = vt[ft.reshape(-1)]  # a seam vertex keeps one of its coordinates
    if np.isnan(uv).any():
        raise InputError(f"{path}: {int(np.isnan(uv[:, 0]).sum())} vertices have no texture coordinate", "use the texture file of this FLAME version")
    uv[:, 1] = 1.0 - uv[:, 1]  # OBJ-style vt count v from the bottom; NextFace from the top
    return np.clip(uv, 0.0, 1.0)


def _flat_albedo(n: int, skin_srgb: tuple[float, float, float], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Constant skin tone with one component per colour channel, and a constant grey specular."""
    per_channel = torch.eye(3, dtype=dtype)[:, None, :].expand(3, n, 3).contiguous()  # [3,N,3]
    diffuse = srgb_to_linear(torch.tensor(skin_srgb, dtype=dtype)).expand(n, 3).contiguous()
    return {
        "diffuse_mean": diffuse,
        "diffuse_basis": per_channel,
        "diffuse_var": torch.full((3,), DIFFUSE_STD**2, dtype=dtype),
        "specular_mean": torch.full((n, 3), SPECULAR_MEAN, dtype=dtype),
        "specular_basis": per_channel.clone(),
        "specular_var": torch.full((3,), SPECULAR_STD**2, dtype=dtype),
    }


def load_flame(
    folder: str | Path,
    options: FlameOptions = FlameOptions(),
    n_shape: int = 0,
    n_expression: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> MorphableModel:
    """Load FLAME from ``folder`` as a model in millimetres with Basel axes (see the module
    docstring). ``n_shape`` / ``n_expression`` keep the first components (0 = all 300/100)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"the FLAME model folder {folder} does not exist", DOWNLOAD_HINT)
    names = (options.model_file,) if options.model_file else MODEL_FILES
    path = next((folder / n for n in names if (folder / n).is_file()), folder / names[0])
    arrays = _read_pickle(path, "model file")
    template = _array(arrays, "v_template", path, (None, 3)).astype(np.float64)
    n = template.shape[0]
    dirs = _array(arrays, "shapedirs", path, (None, 3, None))
    faces = _array(arrays, "f", path, (None, 3)).astype(np.int64)
    if dirs.shape[0] != n or dirs.shape[2] <= SHAPE_COLUMNS:
        raise InputError(
            f"{path}: 'shapedirs' has shape {dirs.shape}, expected [{n},3,{SHAPE_COLUMNS} shape + expression columns]",
            "this is not a FLAME 2020/2023 model file",
        )
    if faces.min() < 0 or faces.max() >= n:
        raise InputError(f"{path}: triangles index vertices outside [0, {n})", "the file is damaged")
    mean = template * METRES_TO_MM
    basis = np.ascontiguousarray(dirs.transpose(2, 0, 1)) * METRES_TO_MM  # [K,N,3]
    mean_t = torch.from_numpy(mean)
    sym, dist = symmetry_map(mean_t)
    symmetric = bool((sym[sym] == torch.arange(n)).all()) and float(dist.max()) <= SYMMETRY_TOLERANCE_MM
    symmetry = sym if symmetric else None
    faces_t = torch.from_numpy(faces)
    if options.texture_file:
        uv = torch.from_numpy(_texture_uv(folder / options.texture_file, faces, n))
    else:
        try:
            uv = symmetric_uv(mean_t, faces_t, symmetry)
        except Exception as exc:  # the parametrisation names what it could not handle
            raise InputError(
                f"cannot compute a UV layout for {path}: {exc}",
                'set [plugins.model_flame] texture_file = "FLAME_texture.npz" (FLAME\'s texture space, with vt/ft)',
            ) from None
    landmarks = _landmarks(folder / options.landmark_file, faces)
    k_shape = min(n_shape or SHAPE_COLUMNS, SHAPE_COLUMNS)
    k_expr = min(n_expression or basis.shape[0], basis.shape[0] - SHAPE_COLUMNS)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype)

    model = MorphableModel(
        shape_mean=t(mean),
        shape_basis=t(basis[:k_shape]),
        shape_var=torch.ones(k_shape, dtype=dtype),
        expression_basis=t(basis[SHAPE_COLUMNS : SHAPE_COLUMNS + k_expr]),
        expression_var=torch.ones(k_expr, dtype=dtype),
        faces=faces_t,
        uv=uv.to(dtype),
        landmarks={"ibug68": landmarks},
        symmetry=symmetry,
        name="flame",
        units="mm",
        **_flat_albedo(n, options.skin_color, dtype),
    )
    return model.to(device)
