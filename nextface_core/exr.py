"""A minimal OpenEXR writer and reader: uncompressed scanline RGB float32.

Enough for environment maps (linear radiance, values above 1 and below 0 kept). Layout from
the OpenEXR file-format specification ("Technical Introduction" / "OpenEXR File Layout"):
magic, version 2, header attributes, a table of scanline offsets, then one block per line.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import write_bytes

_MAGIC = 20000630
_FLOAT = 2  # pixel type FLOAT (32-bit)


def _attr(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def encode_exr(image: np.ndarray) -> bytes:
    """``image [H,W,3]`` float → the bytes of an uncompressed float32 RGB EXR file."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"EXR image must be [H,W,3], got {image.shape}")
    h, w = image.shape[:2]
    channels = b"".join(c + b"\0" + struct.pack("<iB3xii", _FLOAT, 0, 1, 1) for c in (b"B", b"G", b"R")) + b"\0"
    box = struct.pack("<iiii", 0, 0, w - 1, h - 1)
    header = (
        struct.pack("<ii", _MAGIC, 2)
        + _attr("channels", "chlist", channels)
        + _attr("compression", "compression", b"\0")
        + _attr("dataWindow", "box2i", box)
        + _attr("displayWindow", "box2i", box)
        + _attr("lineOrder", "lineOrder", b"\0")
        + _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
        + _attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
        + _attr("screenWindowWidth", "float", struct.pack("<f", 1.0))
        + b"\0"
    )
    planar = np.ascontiguousarray(image[..., ::-1].astype("<f4").transpose(0, 2, 1))  # [H, (B,G,R), W]
    line_bytes = 3 * w * 4
    first = len(header) + 8 * h
    offsets = np.arange(h, dtype="<u8") * (8 + line_bytes) + first
    lines = np.empty((h, 8 + line_bytes), dtype=np.uint8)
    lines[:, :4] = np.arange(h, dtype="<i4").view(np.uint8).reshape(h, 4)
    lines[:, 4:8] = np.frombuffer(struct.pack("<i", line_bytes), dtype=np.uint8)
    lines[:, 8:] = planar.view(np.uint8).reshape(h, line_bytes)
    return header + offsets.tobytes() + lines.tobytes()


def write_exr(path: str | Path, image: np.ndarray) -> None:
    """Atomically write ``image [H,W,3]`` as an uncompressed float32 EXR."""
    write_bytes(path, encode_exr(image))


def read_exr(path: str | Path) -> np.ndarray:
    """Read an EXR written by :func:`write_exr` → ``[H,W,3]`` float32 (other EXRs: InputError)."""
    data = Path(path).read_bytes()
    if len(data) < 8 or struct.unpack_from("<i", data)[0] != _MAGIC:
        raise InputError(f"{path} is not an OpenEXR file", "pass a .exr file")
    pos, attrs = 8, {}
    while data[pos] != 0:
        end = data.index(b"\0", pos)
        name = data[pos:end].decode()
        end2 = data.index(b"\0", end + 1)
        (size,) = struct.unpack_from("<i", data, end2 + 1)
        attrs[name] = data[end2 + 5 : end2 + 5 + size]
        pos = end2 + 5 + size
    pos += 1
    if attrs.get("compression") != b"\0":
        raise InputError(f"{path} is a compressed EXR", "only uncompressed EXRs written by NextFace can be read")
    x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"])
    h, w = y1 - y0 + 1, x1 - x0 + 1
    start = pos + 8 * h
    lines = np.frombuffer(data, dtype=np.uint8, count=h * (8 + 12 * w), offset=start).reshape(h, 8 + 12 * w)
    planar = lines[:, 8:].copy().view("<f4").reshape(h, 3, w)
    return planar.transpose(0, 2, 1)[..., ::-1].astype(np.float32)
