"""Writing files so that a crash or interruption never leaves a half-written output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import NextFaceError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    The temporary name keeps the suffix so writers that infer the format still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def read_user_text(path: Path, what: str, error: type[NextFaceError], missing_hint: str, encoding: str = "utf-8") -> str:
    """Read a text file the user named; a missing or unreadable file raises ``error`` saying so.

    ``what`` names the file in the message ("config file", "landmark file", ...).
    """
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist", missing_hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} cannot be read: {exc}", "pass a UTF-8 text file") from None


def write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``path``."""
    write_bytes(path, text.encode("utf-8"))
