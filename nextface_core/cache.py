"""The per-user cache folder plugins keep derived files in (e.g. a model's fast binary form).

``$NEXTFACE_CACHE_DIR`` when set, else the per-user cache folder (platformdirs); each
plugin uses a sub-folder of its own (:func:`cache_dir`). The core owns the location so a
command such as ``nextface model info --cold`` can empty it for every model plugin alike.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

CACHE_ENV = "NEXTFACE_CACHE_DIR"


def cache_root() -> Path:
    """``$NEXTFACE_CACHE_DIR``, or ``<user cache dir>/nextface``."""
    import platformdirs

    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else platformdirs.user_cache_path("nextface")


def cache_dir(name: str) -> Path:
    """The cache folder of one plugin or purpose (``cache_root() / name``; not created here)."""
    return cache_root() / name


@contextlib.contextmanager
def empty_cache() -> Iterator[Path]:
    """Point :data:`CACHE_ENV` at a new empty temporary folder while the block runs (for
    timing cold loads); the variable is restored and the folder removed afterwards."""
    previous = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory(prefix="nextface-cache-") as empty:
        os.environ[CACHE_ENV] = empty
        try:
            yield Path(empty)
        finally:
            if previous is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = previous
