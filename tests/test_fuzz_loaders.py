"""Property-based fuzzing of the loaders users feed files to: images, landmark files and
configs. Whatever the bytes, a loader either returns a valid value or raises a
:class:`~nextface_core.errors.NextFaceError` (one line for the CLI) — never anything else.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nextface_core.config import load_config
from nextface_core.errors import NextFaceError
from nextface_core.images import load_image
from nextface_core.landmark_files import read_landmark_file

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _png(mode: str, size: tuple[int, int], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode).save(buf, format="PNG")
    return buf.getvalue()


def _loads_or_raises_nextface_error(load, suffix: str, data: bytes):
    """Write ``data`` to a file ending in ``suffix`` (removed afterwards) and load it."""
    with tempfile.TemporaryDirectory(prefix="nextface-fuzz-") as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        try:
            return load(path)
        except NextFaceError as exc:
            assert path.name in exc.message, exc.message  # the one line names the file
            return None


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".bmp", ".tif", ".gif", ".webp"]))
def test_load_image_on_random_bytes(data: bytes, suffix: str) -> None:
    image = _loads_or_raises_nextface_error(load_image, suffix, data)
    if image is not None:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@FUZZ
@given(
    mode=st.sampled_from(["L", "RGB", "RGBA"]),
    size=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    seed=st.integers(0, 2**16),
    cut=st.floats(0.0, 1.0),
    flip=st.integers(0, 10_000),
)
def test_load_image_on_truncated_or_damaged_png(mode: str, size: tuple[int, int], seed: int, cut: float, flip: int) -> None:
    """A valid PNG cut short, or with one byte changed, loads (right shape) or raises NextFaceError."""
    data = bytearray(_png(mode, size, seed))
    data[flip % len(data)] ^= 0x5A
    data = bytes(data[: max(1, int(len(data) * cut))]) if cut < 1.0 else bytes(data)
    image = _loads_or_raises_nextface_error(load_image, ".png", data)
    if image is not None:
        assert image.shape == (size[1], size[0], 3) and image.dtype == np.uint8


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=30,
)


@FUZZ
@given(
    value=st.fixed_dictionaries(
        {},
        optional={
            "format": st.sampled_from(["nextface-landmarks-1", "x"]) | st.text(max_size=5),
            "images": _json_values,
            "schema": st.sampled_from(["ibug68", "mediapipe478"]) | st.text(max_size=5),
            "landmarks": _json_values,
            "points": _json_values,
        },
    )
    | _json_values
)
def test_landmark_json_reader_on_random_documents(value: object) -> None:
    text = json.dumps(value, allow_nan=True)
    _loads_or_raises_nextface_error(read_landmark_file, ".json", text.encode())


@FUZZ
@given(
    rows=st.lists(
        st.lists(st.sampled_from(["image", "schema", "index", "x", "y", "confidence", "face0", "ibug68", "0", "1.5",
                                  "nan", "-3", "", "inf", "1e999", "\"", "width", "height"]), max_size=8),
        max_size=8,
    ),
    junk=st.binary(max_size=64),
)
def test_landmark_csv_reader_on_random_tables(rows: list[list[str]], junk: bytes) -> None:
    data = "\n".join(",".join(r) for r in rows).encode() + junk
    _loads_or_raises_nextface_error(read_landmark_file, ".csv", data)


_toml_keys = st.sampled_from(["run", "stage1", "stage2", "light", "weights", "plugins", "texture", "nope"])
_toml_fields = st.sampled_from(["iterations", "bands", "learning_rate", "device", "seed", "resolution", "photometric", "x"])
_toml_values = st.sampled_from(['1', '-1', '0', '3.5', '"cpu"', 'true', '[1, 2]', '{a = 1}', '1e400', 'nan', '"', '9', '1024'])


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            _toml_keys.map(lambda k: f"[{k}]"),
            st.tuples(_toml_fields, _toml_values).map(lambda kv: f"{kv[0]} = {kv[1]}"),
            st.text(max_size=12),
        ),
        max_size=10,
    )
)
def test_config_loader_on_random_toml(lines: list[str]) -> None:
    config = _loads_or_raises_nextface_error(load_config, ".toml", "\n".join(lines).encode("utf-8", "surrogatepass"))
    if config is not None:
        assert config.light.bands in range(1, 10) and config.stage2.iterations >= 0


@FUZZ
@given(
    key=st.sampled_from(["run.seed", "stage2.iterations", "light.bands", "run.device", "nope.key", "run", "weights.photometric"]),
    value=st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | st.text(max_size=6),
)
def test_config_overrides_on_random_values(key: str, value: object) -> None:
    try:
        load_config(None, {key: value})
    except NextFaceError as exc:
        assert exc.message
