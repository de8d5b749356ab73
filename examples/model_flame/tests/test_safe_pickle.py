"""The restricted unpickler: FLAME's array types load, anything that could run code is refused."""

from __future__ import annotations

import builtins
import importlib.util
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from nextface_model_flame.safe_pickle import UnsafePickleError, load_arrays


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_arrays_scalars_and_sparse_matrices_load_in_every_protocol(tmp_path, protocol) -> None:
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(5, 7))
    dense[dense < 0.5] = 0.0
    data = {
        "v": rng.normal(size=(4, 3)),
        "f": np.arange(12, dtype=np.uint32).reshape(4, 3),
        "csc": scipy.sparse.csc_matrix(dense),
        "csr": scipy.sparse.csr_matrix(dense),
        "scalar": np.float32(2.5),
        "text": "lbs",
    }
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    loaded = load_arrays(path)
    assert np.array_equal(loaded["v"], data["v"]) and loaded["f"].dtype == np.uint32
    assert np.array_equal(loaded["csc"].toarray(), dense) and loaded["csc"].format == "csc"
    assert np.array_equal(loaded["csr"].toarray(), dense) and loaded["csr"].format == "csr"
    assert loaded["scalar"] == np.float32(2.5) and loaded["text"] == "lbs"


class _Payload:
    """Fake attacker object: unpickling it would call ``call(*args)``."""

    def __init__(self, call, *args) -> None:
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize(
    "call, args, name",
    [
        (os.system, ("touch {marker}",), "system"),
        (subprocess.Popen, (["touch", "{marker}"],), "Popen"),
        (builtins.eval, ("open({marker!r}, 'w')",), "eval"),
    ],
    ids=["os.system", "subprocess.Popen", "eval"],
)
def test_a_pickle_that_would_run_code_is_refused_before_running_it(tmp_path, call, args, name) -> None:
    marker = tmp_path / "pwned"
    args = tuple(a.format(marker=str(marker)) if isinstance(a, str) else [x.format(marker=str(marker)) for x in a] for a in args)
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3)), "evil": _Payload(call, *args)}, protocol=2))
    with pytest.raises(UnsafePickleError, match=rf"refusing to load [\w.]+\.{name}: only numpy arrays"):
        load_arrays(path)
    assert not marker.exists()


def test_codecs_encode_is_admitted_only_for_latin1(tmp_path) -> None:
    import codecs

    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"b": _Payload(codecs.encode, "abc", "rot13")}, protocol=2))
    with pytest.raises(UnsafePickleError, match="encoding 'rot13'"):
        load_arrays(path)


def test_chumpy_arrays_load_without_chumpy(tmp_path, monkeypatch) -> None:
    assert importlib.util.find_spec("chumpy") is None  # chumpy is not installed and not needed
    # Fake chumpy module, only for writing the file: pickles a Ch as FLAME's files do
    # (class chumpy.ch.Ch, state = its __dict__ holding the value in "x").
    ch_module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x, **extra) -> None:
            self.__dict__.update(x=x, **extra)

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch_module.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch_module)
    x = np.random.default_rng(1).normal(size=(6, 3, 4))
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"shapedirs": Ch(x, _dirty_vars=set())}, protocol=2))
    (tmp_path / "expr.pkl").write_bytes(pickle.dumps({"shapedirs": Ch(None, a=np.ones(2))}, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    monkeypatch.delitem(sys.modules, "chumpy")

    loaded = load_arrays(tmp_path / "plain.pkl")
    assert isinstance(loaded["shapedirs"], np.ndarray) and np.array_equal(loaded["shapedirs"], x)
    assert "chumpy" not in sys.modules
    with pytest.raises(UnsafePickleError, match="computed expression, not a plain array"):
        load_arrays(tmp_path / "expr.pkl")


def test_a_pickle_of_something_other_than_a_dict_is_rejected(tmp_path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps([np.zeros(3)]))
    with pytest.raises(pickle.UnpicklingError, match="expected a dict of arrays, found list"):
        load_arrays(path)


def test_an_object_npy_file_holding_a_dict_loads_and_a_plain_one_is_rejected(tmp_path) -> None:
    embedding = {"full_lmk_faces_idx": np.arange(68)[None], "full_lmk_bary_coords": np.full((1, 68, 3), 1.0 / 3.0)}
    np.save(tmp_path / "landmark_embedding.npy", embedding)  # np.save pickles object arrays: how DECA ships its embedding
    loaded = load_arrays(tmp_path / "landmark_embedding.npy")
    assert np.array_equal(loaded["full_lmk_faces_idx"], embedding["full_lmk_faces_idx"])
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(pickle.UnpicklingError, match="holds a plain array, not a dict"):
        load_arrays(tmp_path / "plain.npy")


def test_an_npy_file_that_would_run_code_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"
    np.save(tmp_path / "evil.npy", np.array(_Payload(os.system, f"touch {marker}"), dtype=object))  # np.save pickles object arrays
    with pytest.raises(UnsafePickleError, match=r"refusing to load [\w.]+\.system"):
        load_arrays(tmp_path / "evil.npy")
    assert not marker.exists()
