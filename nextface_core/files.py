"""Writing files and folders so that a crash, a kill or a full disk never leaves a
half-written output, with the permissions the umask gives, and failures named."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from .errors import NextFaceError, OutputError


#: errno → what the user can do about it
_FIXES = {
    errno.ENOSPC: "free space on that disk, or write to another folder (-o)",
    errno.EDQUOT: "free space within your disk quota, or write to another folder (-o)",
    errno.EROFS: "that file system is read-only: write to another folder (-o)",
    errno.EACCES: "you may not write there: fix the folder's permissions, or write to another folder (-o)",
    errno.EPERM: "you may not write there: fix the folder's permissions, or write to another folder (-o)",
}


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """The :class:`OutputError` for an ``OSError`` raised while writing ``path``."""
    reason = exc.strerror or str(exc)
    code = errno.errorcode.get(exc.errno or 0, "")
    fix = _FIXES.get(exc.errno or 0, "check that the output folder is a writable folder, or write to another folder (-o)")
    return OutputError(f"cannot write {path}: {reason}" + (f" ({code})" if code else ""), fix)


def _fresh_name(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched. The
    temporary file is created with mode 0666 less the umask (what a plain ``open`` gives),
    and keeps the suffix so writers that infer the format still work. An ``OSError`` (disk
    full, read-only file system, no permission) becomes an :class:`OutputError`.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while tmp is None:
            candidate = _fresh_name(path, f".part{path.suffix}")
            try:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                tmp = candidate
            except FileExistsError:
                continue
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise output_error(path, exc) from exc
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` whole.

    So a crash, a kill or a full disk leaves the complete folder or none (a previous one
    stays until the new one is complete). The folder gets mode 0777 less the umask; the
    leftovers of an earlier killed write of the same folder are removed first.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
            shutil.rmtree(stale, ignore_errors=True)
        while tmp is None:
            candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
            try:
                candidate.mkdir(0o777)
                tmp = candidate
            except FileExistsError:
                continue
        try:
            yield tmp
        except OutputError as exc:  # name the file at its final place, not in the temporary folder
            exc.message = exc.message.replace(str(tmp), str(path))
            raise
        if path.exists():
            old = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise output_error(path, exc) from exc
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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
