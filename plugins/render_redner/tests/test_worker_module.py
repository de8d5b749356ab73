"""The worker modules stay runnable on Python 3.8 without NextFace: 3.8 syntax, no 3.9+ runtime
constructs, no imports beyond the standard library, torch and pyredner — and, where a Python 3.8
interpreter exists on this machine, the real worker module is started under it."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nextface_render_redner.client import WORKER_DIR, WorkerError, WorkerProcess
from nextface_render_redner.worker.nextface_redner_worker import check_redner_version, version_tuple

MODULES = sorted(WORKER_DIR.glob("*.py"))
ALLOWED_IMPORTS = {
    "__future__", "argparse", "collections", "ctypes", "importlib", "json", "os", "platform", "signal", "struct", "sys",
    "threading", "time", "traceback", "typing", "torch", "pyredner", "nextface_redner_wire", "nextface_redner_scene",
}
#: builtins that only became subscriptable at run time in Python 3.9
GENERIC_BUILTINS = {"list", "dict", "tuple", "set", "frozenset", "type"}
#: names of functions and modules added in Python 3.9+
NEWER_NAMES = {"removeprefix", "removesuffix", "cache", "lcm", "zoneinfo", "graphlib", "tomllib", "pairwise", "batched"}


def _runtime_nodes(tree: ast.AST):
    """Every node outside annotations (``from __future__ import annotations`` keeps those unevaluated)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            skip.add(id(node.annotation))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            skip.add(id(node.returns))
        elif isinstance(node, ast.AnnAssign):
            skip.add(id(node.annotation))
    stack = [tree]
    while stack:
        node = stack.pop()
        if id(node) in skip:
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_worker_module_is_python_3_8(path: Path) -> None:
    source = path.read_text()
    tree = ast.parse(source, filename=str(path), feature_version=(3, 8))
    assert "from __future__ import annotations" in source or path.name == "__init__.py"
    problems = []
    for node in _runtime_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if node.__dict__.get("level", 0) == 0 and name.split(".")[0] not in ALLOWED_IMPORTS:
                    problems.append(f"line {node.lineno}: imports {name}")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in GENERIC_BUILTINS:
            problems.append(f"line {node.lineno}: {node.value.id}[...] at run time (Python 3.9+)")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and any(
            isinstance(side, ast.Constant) and side.value is None for side in (node.left, node.right)
        ):
            problems.append(f"line {node.lineno}: X | None at run time (Python 3.10+)")
        elif isinstance(node, ast.Attribute) and node.attr in NEWER_NAMES:
            problems.append(f"line {node.lineno}: .{node.attr} (Python 3.9+)")
        elif isinstance(node, ast.Name) and node.id in NEWER_NAMES:
            problems.append(f"line {node.lineno}: {node.id} (Python 3.9+)")
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_the_checker_catches_newer_syntax() -> None:
    with pytest.raises(SyntaxError):
        ast.parse("match x:\n    case 1:\n        pass\n", feature_version=(3, 8))
    nodes = list(_runtime_nodes(ast.parse("def f(a: list[int]) -> dict[str, int]:\n    return dict[str, int]\n")))
    subscripts = [n for n in nodes if isinstance(n, ast.Subscript)]
    assert len(subscripts) == 1  # only the one evaluated at run time


def test_redner_version_check() -> None:
    assert version_tuple("0.4.28") == (0, 4, 28) and version_tuple("1.0rc1") == (1, 0) and version_tuple("2.x") == (2,)
    assert check_redner_version("0.4.28") is None and check_redner_version("0.5.0") is None
    assert "older than 0.4.28" in check_redner_version("0.4.16")


def _python38() -> str | None:
    """A Python 3.8 interpreter on this machine (PATH, or pyenv's), if any."""
    found = shutil.which("python3.8")
    candidates = [found] if found else []
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in root.glob("3.8*/bin/python3.8"))
    for exe in candidates:
        try:
            out = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "(3, 8)":
            return exe
    return None


def test_the_real_worker_starts_on_python_3_8() -> None:
    """Under a bare Python 3.8 (no torch), the real worker module loads, says hello and names what is missing."""
    exe = _python38()
    if exe is None:
        pytest.skip("no Python 3.8 interpreter on this machine (python3.8 on PATH or ~/.pyenv/versions/3.8*)")
    probe = subprocess.run([exe, "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{exe} has torch: the missing-torch path cannot be shown with it")
    with pytest.raises(WorkerError) as err:
        WorkerProcess(exe, source="NEXTFACE_REDNER_PYTHON")
    assert "No module named 'torch'" in err.value.message and exe in err.value.message
    assert f"{exe} -m pip install torch" in err.value.hint and err.value.exit_code == 4
