"""Reading FLAME's pickle files without running code from them.

FLAME ships its model (``generic_model.pkl``) and landmark embedding
(``flame_static_embedding.pkl``) as Python pickles. A plain unpickler calls whatever
function a file names, so a doctored file could run any command. :class:`SafeUnpickler`
resolves only the globals in :data:`ALLOWED`: numpy's array, scalar and dtype reconstruction
(``_reconstruct``, ``scalar``, ``_frombuffer``), the
``copyreg`` helper that Python 2 pickles use to rebuild plain objects, ``object``, ``set``
and ``frozenset`` (chumpy objects hold sets), and a
latin-1-only stand-in for ``_codecs.encode`` (how Python 3 writes ``bytes`` in protocol 2).
Anything else (``os.system``, ``subprocess.Popen``, ``builtins.eval``, ...) raises
:class:`UnsafePickleError` before it is called.

Two kinds of foreign objects in FLAME files are *not* rebuilt as themselves but as inert
state holders (:class:`_State`) that only store the pickled attributes, which
:func:`load_arrays` then turns into numpy arrays:

- chumpy ``Ch`` arrays (FLAME 2019/2020 store ``shapedirs`` etc. as chumpy objects): the
  plain ones keep their value in the attribute ``x``. chumpy is never imported.
- scipy sparse matrices (``J_regressor``): rebuilt from their ``data``/``indices``/``indptr``
  (or ``row``/``col``) arrays with scipy's constructors, never from the pickled object.
"""

from __future__ import annotations

import copyreg
import importlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse


class UnsafePickleError(pickle.UnpicklingError):
    """The file names a global outside :data:`ALLOWED` (it could run code)."""


class _State:
    """An inert stand-in for a foreign object: keeps the pickled state, runs nothing."""

    kind = "object"

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Chumpy(_State):
    kind = "chumpy"


class _Csc(_State):
    kind = "csc"


class _Csr(_State):
    kind = "csr"


class _Coo(_State):
    kind = "coo"


def _numpy_global(module: str, name: str) -> Any:
    """``name`` from numpy's ``module`` (under ``numpy._core`` in numpy 2, ``numpy.core`` before)."""
    try:
        found = importlib.import_module(f"numpy._core.{module}")
    except ImportError:
        found = importlib.import_module(f"numpy.core.{module}")
    return getattr(found, name)


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """What protocol-2 pickles written by Python 3 use for ``bytes`` (``_codecs.encode``), latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


#: (module, name) → what it resolves to; nothing else can be loaded
ALLOWED: dict[tuple[str, str], Any] = {
    **{
        (f"numpy.{core}.{module}", name): _numpy_global(module, name)
        for core in ("core", "_core")
        for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))
    },
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
    ("copyreg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
    ("_codecs", "encode"): _latin1_bytes,
    **{(m, t.__name__): t for m in ("__builtin__", "builtins") for t in (object, set, frozenset)},
    ("chumpy.ch", "Ch"): _Chumpy,
    ("chumpy", "Ch"): _Chumpy,
    **{(f"scipy.sparse.{m}", f"{k}_matrix"): c for k, c in (("csc", _Csc), ("csr", _Csr), ("coo", _Coo)) for m in (k, f"_{k}")},
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits only :data:`ALLOWED` (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: only numpy arrays, scipy sparse matrices and chumpy arrays are allowed"
            ) from None


def _to_array(value: _State) -> Any:
    """A numpy array (or scipy CSC matrix) from an inert state holder."""
    state = value.state if isinstance(value.state, dict) else {}
    if value.kind == "chumpy":
        x = state.get("x")
        if not isinstance(x, np.ndarray):
            raise UnsafePickleError(
                "a chumpy object holds a computed expression, not a plain array; "
                "convert the file once with chumpy installed (np.array of each entry)"
            )
        return x
    shape = state.get("_shape", state.get("shape"))
    if value.kind in ("csc", "csr") and shape is not None:
        cls = scipy.sparse.csc_matrix if value.kind == "csc" else scipy.sparse.csr_matrix
        return cls((state["data"], state["indices"], state["indptr"]), shape=tuple(shape))
    if value.kind == "coo" and shape is not None:
        return scipy.sparse.coo_matrix((state["data"], (state["row"], state["col"])), shape=tuple(shape))
    raise UnsafePickleError(f"a {value.kind} object in the file has no arrays NextFace can read (keys {sorted(state)})")


def _convert(value: Any) -> Any:
    if isinstance(value, _State):
        return _to_array(value)
    if isinstance(value, dict):
        return {k: _convert(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_convert(v) for v in value)
    if isinstance(value, np.ndarray) and value.dtype == object:
        return np.array([_convert(v) for v in value.ravel()], dtype=object).reshape(value.shape)
    return value


def _npy_payload(data: bytes) -> bytes:
    """The pickle stream of an object-dtype ``.npy`` file (numpy writes a dict that way,
    e.g. DECA's ``landmark_embedding.npy``); the header is parsed, never executed."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise pickle.UnpicklingError(f".npy format version {version} is not supported (1.0 and 2.0 are)")
    _, _, dtype = readers[version](stream)
    if not dtype.hasobject:
        raise pickle.UnpicklingError("this .npy file holds a plain array, not a dict of arrays")
    return data[stream.tell() :]


def load_arrays(path: str | Path) -> dict[str, Any]:
    """The dict a FLAME pickle (or an object ``.npy`` file holding a pickled dict) holds,
    with chumpy arrays as numpy arrays and sparse matrices rebuilt by scipy. Python 2
    pickles are read with ``latin1`` (numpy's documented choice for byte strings of array
    data).

    Raises :class:`UnsafePickleError` for a global outside :data:`ALLOWED` and
    ``pickle.UnpicklingError`` for a damaged file.
    """
    data = Path(path).read_bytes()
    if data.startswith(b"\x93NUMPY"):
        data = _npy_payload(data)
    loaded = SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    if isinstance(loaded, np.ndarray) and loaded.dtype == object and loaded.ndim == 0:
        loaded = loaded.item()
    if not isinstance(loaded, dict):
        raise pickle.UnpicklingError(f"expected a dict of arrays, found {type(loaded).__name__}")
    return {str(k): _convert(v) for k, v in loaded.items()}
