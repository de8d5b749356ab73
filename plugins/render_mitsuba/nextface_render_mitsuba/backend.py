"""Finding a working Dr.Jit backend: libLLVM for ``llvm_ad_rgb``, a GPU for ``cuda_ad_rgb``.

Dr.Jit's CPU backend loads a shared libLLVM at run time. With Debian's LLVM 15 it aborts
the whole process ("LLVM ERROR: Cannot select: fminimum"); LLVM 19 works. So before Dr.Jit
is first imported we point ``DRJIT_LIBLLVM_PATH`` at a recent libLLVM when the user has not
set it, and refuse with a clear error when none can be found. Nothing here imports Mitsuba
or Dr.Jit at module import time: ``nextface plugins list`` must stay cheap and crash-free.
"""

from __future__ import annotations

import glob
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from nextface_core.errors import BackendUnavailableError
from nextface_core.logs import native_log_level
from nextface_core.plugins import Availability

ENV_LIBLLVM = "DRJIT_LIBLLVM_PATH"
#: oldest LLVM major version Dr.Jit 1.x runs with here (15 aborts; 19 is the tested one)
MIN_LLVM_MAJOR = 18
LLVM_PACKAGE = "libllvm19"
CPU_VARIANT = "llvm_ad_rgb"
CUDA_VARIANT = "cuda_ad_rgb"

_SEARCH_GLOBS = (
    "/usr/lib/*-linux-gnu/libLLVM.so.*",
    "/usr/lib/*-linux-gnu/libLLVM-*.so*",
    "/usr/lib/llvm-*/lib/libLLVM*.so*",
    "/usr/lib64/libLLVM*.so*",
    "/usr/local/lib/libLLVM*.so*",
    "/opt/homebrew/opt/llvm/lib/libLLVM.dylib",
    "/usr/local/opt/llvm/lib/libLLVM.dylib",
)


def _llvm_major(path: str) -> int | None:
    """LLVM major version from a library file name (``libLLVM.so.19.1``, ``libLLVM-19.so``)."""
    match = re.search(r"libLLVM(?:[-.]so)?[.-](\d+)", Path(path).name)
    return int(match.group(1)) if match else None


def find_libllvm(search_globs: tuple[str, ...] = _SEARCH_GLOBS) -> str | None:
    """The newest libLLVM with major version ≥ :data:`MIN_LLVM_MAJOR` on this machine, or None."""
    found: list[tuple[int, str]] = []
    for pattern in search_globs:
        for path in glob.glob(pattern):
            major = _llvm_major(path)
            if major is not None and major >= MIN_LLVM_MAJOR and os.path.isfile(path):
                found.append((major, path))
    return max(found)[1] if found else None


def _missing_llvm_error(detail: str) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"Mitsuba's CPU backend ({CPU_VARIANT}) needs a shared libLLVM ≥ {MIN_LLVM_MAJOR}: {detail}",
        f"install it (Debian/Ubuntu: apt-get install {LLVM_PACKAGE}) or set {ENV_LIBLLVM} "
        f"to the library file, e.g. /usr/lib/x86_64-linux-gnu/libLLVM.so.19.1",
    )


def configure_libllvm() -> str:
    """Make sure ``DRJIT_LIBLLVM_PATH`` names an existing libLLVM; returns the path.

    Must run before Dr.Jit is imported. Raises :class:`BackendUnavailableError` naming the
    package to install and the variable to set when no usable library exists.
    """
    current = os.environ.get(ENV_LIBLLVM)
    if current:
        if not os.path.isfile(current):
            raise _missing_llvm_error(f"{ENV_LIBLLVM}={current} does not exist")
        major = _llvm_major(current)
        if major is not None and major < MIN_LLVM_MAJOR:
            raise _missing_llvm_error(f"{ENV_LIBLLVM}={current} is LLVM {major}, with which Dr.Jit aborts")
        return current
    path = find_libllvm()
    if path is None:
        raise _missing_llvm_error("none found in the usual system library folders")
    os.environ[ENV_LIBLLVM] = path
    return path


def variant_for(device: torch.device) -> str:
    """The Mitsuba variant that renders tensors living on ``device``."""
    return CUDA_VARIANT if device.type == "cuda" else CPU_VARIANT


def import_mitsuba(variant: str) -> tuple[Any, Any]:
    """Import and return ``(mitsuba, drjit)`` with ``variant`` active (libLLVM configured first)."""
    if variant == CPU_VARIANT:
        configure_libllvm()
    try:
        import drjit as dr
        import mitsuba as mi
    except ImportError as exc:  # pragma: no cover - mitsuba is a hard dependency of this plugin
        raise BackendUnavailableError(f"mitsuba is not importable: {exc}", "pip install 'mitsuba>=3.5' 'drjit>=1.0'") from exc
    if variant not in mi.variants():
        raise BackendUnavailableError(
            f"this Mitsuba build has no variant {variant!r} (it has {', '.join(mi.variants())})",
            "pip install the official mitsuba wheel, which ships llvm_ad_rgb and cuda_ad_rgb",
        )
    backend = dr.JitBackend.CUDA if variant == CUDA_VARIANT else dr.JitBackend.LLVM
    if not dr.has_backend(backend):
        hint = "use CPU tensors (run.device = \"cpu\")" if variant == CUDA_VARIANT else f"apt-get install {LLVM_PACKAGE}"
        raise BackendUnavailableError(f"Dr.Jit cannot start its {backend.name} backend for {variant}", hint)
    if mi.variant() != variant:
        mi.set_variant(variant)
    level = native_log_level()  # "error" unless -v: no sampler/JIT warnings in a user's log
    mi.set_log_level(mi.LogLevel.Warn if level == "warn" else mi.LogLevel.Error)
    dr.set_log_level(dr.LogLevel.Warn if level == "warn" else dr.LogLevel.Error)
    return mi, dr


@lru_cache(maxsize=1)
def check() -> Availability:
    """Which variants can run here, for ``nextface plugins list``; never raises."""
    states = []
    cpu_ok = False
    try:
        path = configure_libllvm()
        import drjit as dr

        cpu_ok = bool(dr.has_backend(dr.JitBackend.LLVM))
        states.append(f"{CPU_VARIANT}: ok ({Path(path).name})" if cpu_ok else f"{CPU_VARIANT}: LLVM backend failed to start")
    except BackendUnavailableError as exc:
        states.append(f"{CPU_VARIANT}: {exc.message} ({exc.hint})")
    except ImportError as exc:
        return Availability(False, f"mitsuba/drjit not importable: {exc}")
    try:
        import drjit as dr

        cuda_ok = bool(dr.has_backend(dr.JitBackend.CUDA))
    except ImportError as exc:
        return Availability(False, f"mitsuba/drjit not importable: {exc}")
    states.append(f"{CUDA_VARIANT}: ok" if cuda_ok else f"{CUDA_VARIANT}: no GPU")
    return Availability(cpu_ok or cuda_ok, "; ".join(states))
