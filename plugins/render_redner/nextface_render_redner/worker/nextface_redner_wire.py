"""The redner worker protocol: framed messages over a pipe (Python 3.8 syntax, no NextFace import).

Every message, either way, is

    header   struct "<4sHHIQ": magic b"NFRW", protocol VERSION, flags (0), JSON length, payload length
    JSON     UTF-8 object: "op" plus the op's fields, and "arrays": [[name, dtype, shape, offset], ...]
    payload  the arrays' raw little-endian bytes, C order, each at a 64-byte aligned offset

The reader checks magic and version on every message before it reads anything else, so two
sides of different versions fail at the first message with both version numbers.

Ops (parent → worker / worker → parent):

- ``hello`` (worker, first message): ``ok``, ``backend``, ``backend_version``, ``device``, ``python``,
  ``executable``, ``torch``, ``pid``; when the back end cannot run: ``ok`` false, ``error``, ``fix``.
- ``render`` → ``rendered``: ``id``, ``settings`` (the RenderSettings as an object, see
  :class:`Settings`), ``grad`` (names
  of the arrays whose gradients a later ``backward`` will ask for); arrays are the RenderInputs
  tensors (``vertices`` … ``principal_point``) plus ``envmap_basis``. Reply arrays ``image``, ``mask``;
  reply field ``worker_s``: seconds the worker spent rendering (the rest of the round trip is transport).
- ``backward`` → ``gradients``: ``id`` of a render; arrays ``image``/``mask`` (output gradients,
  either may be absent). Reply arrays: one gradient per name of that render's ``grad`` that
  received one; ``worker_s`` as for ``render``.
- ``quit``: the worker exits (no reply).
- ``error`` (worker, instead of a reply): ``message``, ``traceback``.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO, Dict, NamedTuple, Optional, Tuple

MAGIC = b"NFRW"
#: 2: a render's settings travel as one ``settings`` object (1: flat ``image_size``, ``samples``, ...)
VERSION = 2
HEADER = struct.Struct("<4sHHIQ")
ALIGN = 64
DTYPES = ("float32", "float64", "int32", "int64", "uint8", "bool")


class Settings(NamedTuple):
    """``nextface_core.render.RenderSettings`` on the wire (the worker cannot import NextFace):
    ``image_size`` (H, W), ``samples`` per pixel, ``seed``, ``mode`` ("full", "albedo" or "lighting")."""

    image_size: Tuple[int, int]
    samples: int
    seed: int
    mode: str

    @classmethod
    def from_fields(cls, fields: Dict[str, Any]) -> "Settings":
        """The ``settings`` object of a ``render`` request's fields."""
        s = fields["settings"]
        height, width = s["image_size"]
        return cls((int(height), int(width)), int(s["samples"]), int(s["seed"]), str(s["mode"]))


class ProtocolError(Exception):
    """A message that is not ours, of another protocol version, or cut short (the peer exited)."""


class VersionMismatch(ProtocolError):
    """The other side frames its messages with another protocol version (``theirs``)."""

    def __init__(self, theirs: int) -> None:
        super().__init__("the other side speaks protocol version {}, this side version {}".format(theirs, VERSION))
        self.theirs = theirs


class PeerClosed(ProtocolError):
    """The stream ended before a message began: the other side closed the pipe or exited."""


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def write_message(stream: BinaryIO, op: str, fields: Optional[Dict[str, Any]] = None, arrays: Optional[Dict[str, Any]] = None) -> int:
    """Write one message: ``fields`` JSON-serialisable, ``arrays`` name → CPU torch tensor. Returns its size in bytes."""
    table = []
    chunks = []
    offset = 0
    for name, tensor in (arrays or {}).items():
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        dtype = str(t.dtype).replace("torch.", "")
        if dtype not in DTYPES:
            raise ProtocolError("array {!r} has dtype {}; the protocol carries {}".format(name, dtype, ", ".join(DTYPES)))
        table.append([name, dtype, list(t.shape), offset])
        raw = memoryview(t.numpy()).cast("B") if t.numel() else memoryview(b"")
        chunks.append((offset, raw))
        offset = _aligned(offset + raw.nbytes)
    meta = dict(fields or {})
    meta["op"] = op
    meta["arrays"] = table
    text = json.dumps(meta).encode("utf-8")
    stream.write(HEADER.pack(MAGIC, VERSION, 0, len(text), offset))
    stream.write(text)
    written = 0
    for start, raw in chunks:
        if start > written:
            stream.write(b"\0" * (start - written))
        stream.write(raw)
        written = start + raw.nbytes
    if offset > written:
        stream.write(b"\0" * (offset - written))
    stream.flush()
    return HEADER.size + len(text) + offset


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            if got == 0 and what == "header":
                raise PeerClosed("the stream ended (the other side closed it or exited)")
            raise ProtocolError("the stream ended inside a message ({} of {} bytes of its {})".format(got, n, what))
        got += k
    return buf


def read_message(stream: BinaryIO) -> Tuple[str, Dict[str, Any], Dict[str, Any]]:
    """Read one message → ``(op, fields, arrays)``; arrays are CPU torch tensors viewing one buffer."""
    magic, version, _flags, json_len, payload_len = HEADER.unpack(bytes(_read_exact(stream, HEADER.size, "header")))
    if magic != MAGIC:
        raise ProtocolError("not a NextFace redner worker message (starts with {!r})".format(bytes(magic)))
    if version != VERSION:
        raise VersionMismatch(version)
    meta = json.loads(bytes(_read_exact(stream, json_len, "JSON")).decode("utf-8"))
    payload = _read_exact(stream, payload_len, "payload") if payload_len else bytearray()
    arrays = {}
    if meta.get("arrays"):
        import torch

        for name, dtype, shape, offset in meta["arrays"]:
            tdtype = getattr(torch, dtype)
            count = 1
            for s in shape:
                count *= s
            if count == 0:
                arrays[name] = torch.empty(shape, dtype=tdtype)
                continue
            arrays[name] = torch.frombuffer(payload, dtype=tdtype, count=count, offset=offset).view(shape)
    op = meta.pop("op", "")
    meta.pop("arrays", None)
    return op, meta, arrays
