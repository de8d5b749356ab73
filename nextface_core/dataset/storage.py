"""Where a dataset run reads and writes: a local folder or any fsspec URL (``s3://``,
``gs://``, ``file://``, ``memory://`` ...).

Every file is written atomically on every backend: the bytes go to a temporary name in the
same folder, then are moved onto the final name (a rename on local disks; on object stores
a single object appears whole or not at all).
"""

from __future__ import annotations

import os
import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailableError, UsageError


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with torch
        raise BackendUnavailableError("fsspec is not installed", "pip install fsspec") from None
    return fsspec


@dataclass(frozen=True)
class Location:
    """A folder on some filesystem: ``url`` as the user gave it, ``fs`` the fsspec
    filesystem and ``root`` the folder's path on it (no protocol)."""

    url: str
    fs: Any
    root: str

    @classmethod
    def of(cls, url: str | Path) -> "Location":
        """Open ``url`` (a local path or an fsspec URL) as a location."""
        text = str(url) if "://" in str(url) else os.path.abspath(url)  # other processes may have another cwd
        try:
            fs, root = _fsspec().core.url_to_fs(text)
        except (ImportError, ValueError) as exc:
            protocol = text.split("://", 1)[0] if "://" in text else "file"
            raise UsageError(
                f"cannot open {text}: {exc}",
                f"install the fsspec backend for '{protocol}' (e.g. pip install s3fs) or pass a local folder",
            ) from None
        return cls(text, fs, root.rstrip("/") or root)

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs) or "local" in _protocols(self.fs)

    @property
    def in_process_only(self) -> bool:
        """True for filesystems that live in one process's memory (``memory://``)."""
        return "memory" in _protocols(self.fs)

    def path(self, *parts: str) -> str:
        """The path of ``parts`` below the root (on ``fs``)."""
        return posixpath.join(self.root, *parts)

    def url_of(self, *parts: str) -> str:
        """A URL other processes can open for ``parts`` below the root."""
        return self.fs.unstrip_protocol(self.path(*parts)) if not self.is_local else self.path(*parts)

    def exists(self, *parts: str) -> bool:
        return bool(self.fs.exists(self.path(*parts)))

    def read_bytes(self, *parts: str) -> bytes:
        return self.fs.cat_file(self.path(*parts))

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Atomically write ``data`` to ``relative`` below the root."""
        target = self.path(relative)
        folder = posixpath.dirname(target)
        self.fs.makedirs(folder, exist_ok=True)
        tmp = posixpath.join(folder, f".{posixpath.basename(target)}.{uuid.uuid4().hex}.part")
        try:
            with self.fs.open(tmp, "wb") as f:
                f.write(data)
            self.fs.mv(tmp, target)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    def upload_folder(self, local: Path, relative: str) -> list[str]:
        """Copy every file under the local folder ``local`` to ``relative`` below the root,
        each atomically; returns the relative paths written (sorted)."""
        written = []
        for file in sorted(p for p in local.rglob("*") if p.is_file()):
            rel = posixpath.join(relative, file.relative_to(local).as_posix())
            self.write_bytes(rel, file.read_bytes())
            written.append(rel)
        return written


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def local_copy(source: str, folder: Path) -> Path:
    """A local file holding ``source`` (a path or an fsspec URL): the file itself when it is
    local, else a download into ``folder`` (the name keeps the suffix, so the image loader
    can tell the format)."""
    if "://" not in source or source.startswith("file://"):
        return Path(source[len("file://"):] if source.startswith("file://") else source)
    fs, path = _fsspec().core.url_to_fs(source)
    target = folder / f"{uuid.uuid4().hex}{os.path.splitext(path)[1]}"
    fs.get_file(path, str(target))
    return target
