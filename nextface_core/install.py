"""Install hints that work: the pip command that adds a first-party plugin or an extra here.

The first-party plugins are not on the package index; they install from a NextFace source
checkout. When this core runs from a checkout (an editable install, as ``./setup.sh`` makes),
the hints name that checkout's folders; otherwise they name the folder inside a checkout.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from .naming import PREFIXES


def checkout_root() -> Path | None:
    """The source checkout this core is imported from (editable install), or None (a wheel)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "plugins").is_dir() and (root / "pyproject.toml").is_file() else None


@lru_cache(maxsize=4)
def checkout_plugins(root: Path | None = None) -> dict[str, str]:
    """``{distribution: folder}`` of the plugin projects in the checkout (``plugins/*``, read
    from their ``pyproject.toml``); empty outside a checkout. No table of plugins in the core."""
    root = root or checkout_root()
    if root is None:
        return {}
    found: dict[str, str] = {}
    for project in sorted(root.glob("plugins/*/pyproject.toml")):
        try:
            name = tomllib.loads(project.read_text(encoding="utf-8"))["project"]["name"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            continue
        found[name] = f"plugins/{project.parent.name}"
    return found


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it (shorter to type)."""
    try:
        rel = path.relative_to(Path.cwd())
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else "."


def install_command(*distributions: str) -> str:
    """One pip command installing ``distributions``: this checkout's plugins with
    ``-e FOLDER``, other names as they are. Outside a checkout the core cannot tell its
    first-party plugins (not on the package index) from others: every ``nextface-*`` name
    gets the folder NextFace's naming convention gives it in "a NextFace source checkout"."""
    root = checkout_root()
    if root is None:
        parts = [f"-e {conventional_folder(d)}" if d.startswith("nextface-") else d for d in distributions]
        where = "in a NextFace source checkout: " if any(d.startswith("nextface-") for d in distributions) else ""
        return f"{where}pip install {' '.join(parts)}"
    local = checkout_plugins(root)
    parts = [f"-e {_shown(root / local[d])}" if d in local else d for d in distributions]
    return f"pip install {' '.join(parts)}"


def conventional_folder(distribution: str) -> str:
    """``nextface-render-vertex`` → ``plugins/render_vertex``: where a first-party plugin lives."""
    return "plugins/" + distribution.removeprefix("nextface-").replace("-", "_")


def installable(distribution: str) -> bool:
    """Whether a missing ``distribution`` is a plugin this installation lacks (exit 4) rather
    than a misspelt name (exit 2): one of the checkout's plugins, or outside a checkout any
    name of the ``nextface-`` convention (the error lists the registered names either way)."""
    if checkout_root() is None:
        return distribution.startswith("nextface-")
    return distribution in checkout_plugins()


def extra_command(extra: str) -> str:
    """The pip command that adds the core's optional extra ``extra`` ("ray", "video")."""
    root = checkout_root()
    if root is None:
        return f'pip install "nextface[{extra}]"'
    return f'pip install -e "{_shown(root)}[{extra}]"'


def require_plugins(registry: Any, wanted: Iterable[tuple[str, str]]) -> None:
    """Check, before any work starts, that every ``(kind, name)`` a command needs is installed.

    First-party plugins that are missing are reported together, in one error whose fix is
    one pip command (exit 4); a name nobody provides, or a plugin that failed to import,
    raises that name's own error.
    """
    from .errors import BackendUnavailableError, PluginNotFoundError

    missing: list[PluginNotFoundError] = []
    for kind, name in wanted:
        if name in registry.names(kind):
            continue
        try:
            registry.resolve(kind, name)
        except PluginNotFoundError as exc:
            if not exc.installable:
                raise
            missing.append(exc)
    if len(missing) == 1:
        raise missing[0]
    if missing:
        named = ", ".join(f"{e.kind} '{e.name}'" for e in missing)
        raise BackendUnavailableError(
            f"{named} are not installed (this installation lacks these plugins)",
            install_command(*(e.distribution for e in missing)),
        )


def not_installed(registry: Any) -> list[dict[str, str]]:
    """The checkout's plugins that are not installed here (nor broken), each with its kind
    and name by the naming convention and the command installing it."""
    installed = {info.distribution for info in registry.plugins()} | {b.distribution for b in registry.broken}
    kinds = {prefix: kind for kind, prefix in PREFIXES.items()}
    rows = []
    for dist, folder in checkout_plugins().items():
        if dist in installed:
            continue
        prefix, _, name = folder.removeprefix("plugins/").partition("_")
        rows.append({"kind": kinds.get(prefix, prefix), "name": name, "distribution": dist, "install": install_command(dist)})
    return rows


__all__ = [
    "checkout_plugins",
    "checkout_root",
    "conventional_folder",
    "extra_command",
    "install_command",
    "installable",
    "not_installed",
    "require_plugins",
]
