"""Install hints that work: the pip command that adds a first-party plugin or an extra here.

The first-party plugins are not on the package index; they install from a NextFace source
checkout. When this core runs from a checkout (an editable install, as ``./setup.sh`` makes),
the hints name that checkout's folders; otherwise they name the folder inside a checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from .plugins import PluginRegistry

#: first-party distribution -> its folder in the source checkout
FIRST_PARTY_FOLDERS: dict[str, str] = {
    "nextface-render-vertex": "plugins/render_vertex",
    "nextface-render-mitsuba": "plugins/render_mitsuba",
    "nextface-render-redner": "plugins/render_redner",
    "nextface-landmarks-mediapipe": "plugins/landmarks_mediapipe",
    "nextface-landmarks-fan": "plugins/landmarks_fan",
    "nextface-model-basel": "plugins/model_basel",
}


def checkout_root() -> Path | None:
    """The source checkout this core is imported from (editable install), or None (a wheel)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "plugins").is_dir() and (root / "pyproject.toml").is_file() else None


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it (shorter to type)."""
    try:
        rel = path.relative_to(Path.cwd())
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else "."


def install_command(*distributions: str) -> str:
    """One pip command installing ``distributions`` (first-party ones from the checkout)."""
    root = checkout_root()
    parts = []
    for dist in distributions:
        folder = FIRST_PARTY_FOLDERS.get(dist)
        parts.append(dist if folder is None else f"-e {_shown(root / folder) if root else folder}")
    where = "in a NextFace source checkout: " if root is None and any(d in FIRST_PARTY_FOLDERS for d in distributions) else ""
    return f"{where}pip install {' '.join(parts)}"


def extra_command(extra: str) -> str:
    """The pip command that adds the core's optional extra ``extra`` ("ray", "video")."""
    root = checkout_root()
    if root is None:
        return f'pip install "nextface[{extra}]"'
    return f'pip install -e "{_shown(root)}[{extra}]"'


def require_plugins(registry: "PluginRegistry", wanted: Iterable[tuple[str, str]]) -> None:
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
            if exc.distribution is None:
                raise
            missing.append(exc)
    if len(missing) == 1:
        raise missing[0]
    if missing:
        named = ", ".join(f"{e.kind} '{e.name}'" for e in missing)
        raise BackendUnavailableError(
            f"{named} are not installed (this installation lacks these plugins)",
            install_command(*(e.distribution for e in missing if e.distribution)),
        )


def not_installed(registry: "PluginRegistry") -> list[dict[str, str]]:
    """The first-party names nothing registered here, each with the command installing it."""
    from .plugins import KNOWN_DISTRIBUTIONS

    broken = {b.distribution for b in registry.broken}
    return [
        {"kind": kind, "name": name, "distribution": dist, "install": install_command(dist)}
        for (kind, name), dist in KNOWN_DISTRIBUTIONS.items()
        if name not in registry.names(kind) and dist not in broken
    ]


__all__ = ["FIRST_PARTY_FOLDERS", "checkout_root", "extra_command", "install_command", "not_installed", "require_plugins"]
