"""The import rules of docs/architecture.md, checked on the source: no import cycle, the core
never imports a backend or a plugin, plugins never import each other, and every module
imports on its own (no hidden dependence on what another module imported first).

Run: ``.venv/bin/python -m pytest tests/test_architecture.py``.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: third-party libraries only plugins may import (rendering, detection and model-file backends)
BACKENDS = {"mitsuba", "drjit", "redner", "pyredner", "nvdiffrast", "mediapipe", "face_alignment", "h5py"}


def packages(root: Path = ROOT) -> dict[str, Path]:
    """Import name → folder of every package of the repository: the core, the CLI and the plugins."""
    found = {"nextface_core": root / "nextface_core", "nextface_cli": root / "cli"}
    for init in [*root.glob("plugins/*/nextface_*/__init__.py"), *root.glob("examples/*/nextface_*/__init__.py")]:
        found[init.parent.name] = init.parent
    return found


def modules(roots: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name → source file, for every module of ``roots`` (tests excluded)."""
    out = {}
    for package, folder in roots.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if "tests" in parts:
                continue
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported_names(module: str, path: Path) -> set[str]:
    """Absolute names of everything ``module`` imports, at any depth (functions included: a
    lazy import is still an arrow between two parts)."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: None if is_package else -1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            # "from pkg import x": the module pkg.x if there is one, else pkg (resolved below)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def import_graph(sources: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the repository modules it imports (a name resolves to its longest known prefix)."""

    def resolve(name: str) -> str | None:
        while name and name not in sources:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in sources.items():
        targets = {resolve(name) for name in imported_names(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle ``[a, b, ..., a]`` of ``graph``, or None when it is acyclic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


SOURCES = modules(packages())
GRAPH = import_graph(SOURCES)


def _part(module: str) -> str:
    return module.split(".")[0]


def test_the_check_sees_the_whole_repository() -> None:
    parts = {_part(m) for m in SOURCES}
    assert {"nextface_core", "nextface_cli", "nextface_render_vertex", "nextface_model_basel"} <= parts
    assert "nextface_core.plugins" in GRAPH["nextface_cli.plugins_cmd"]


def test_there_is_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_fails_on_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from . import b\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from .a import g\n")
    graph = import_graph(modules({"pkg": tmp_path / "pkg"}))
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    (tmp_path / "pkg" / "b.py").write_text("import json\n")
    assert find_cycle(import_graph(modules({"pkg": tmp_path / "pkg"}))) is None


def test_the_core_never_imports_a_plugin_or_a_backend() -> None:
    plugins = {p for p in packages() if p not in ("nextface_core", "nextface_cli")}
    for module, path in SOURCES.items():
        if _part(module) not in ("nextface_core", "nextface_cli"):
            continue
        roots = {name.split(".")[0] for name in imported_names(module, path)}
        assert not roots & (plugins | BACKENDS), f"{module} imports {sorted(roots & (plugins | BACKENDS))}"


def test_plugins_never_import_each_other() -> None:
    for module, targets in GRAPH.items():
        others = {_part(t) for t in targets} - {_part(module), "nextface_core"}
        assert not others, f"{module} imports {sorted(others)}"


@pytest.mark.parametrize(
    "module", sorted(m for m in SOURCES if _part(m) in ("nextface_core", "nextface_cli") and not m.endswith("__main__"))
)
def test_every_core_and_cli_module_imports_on_its_own(module: str) -> None:
    """Imported first, with none of the repository's modules loaded before it (``__main__``
    modules run the CLI when imported, so they are left out)."""
    saved = {name: mod for name, mod in sys.modules.items() if _part(name) in ("nextface_core", "nextface_cli")}
    for name in saved:
        del sys.modules[name]
    try:
        importlib.import_module(module)
    finally:
        for name in [n for n in sys.modules if _part(n) in ("nextface_core", "nextface_cli")]:
            del sys.modules[name]
        sys.modules.update(saved)
