"""The six first-party plugin distributions are installed, discovered and listed with versions."""

from __future__ import annotations

import json
import subprocess
import sys

from nextface_core.naming import distribution_name
from nextface_core.plugins import PluginRegistry

#: the first-party names and their distributions (the core itself keeps no such table)
KNOWN_DISTRIBUTIONS: dict[tuple[str, str], str] = {
    ("renderer", "vertex"): "nextface-render-vertex",
    ("renderer", "mitsuba"): "nextface-render-mitsuba",
    ("renderer", "redner"): "nextface-render-redner",
    ("detector", "mediapipe"): "nextface-landmarks-mediapipe",
    ("detector", "fan"): "nextface-landmarks-fan",
    ("model", "basel"): "nextface-model-basel",
}


def test_first_party_distributions_follow_the_naming_convention_of_the_install_hints() -> None:
    for (kind, name), dist in KNOWN_DISTRIBUTIONS.items():
        assert distribution_name(kind, name) == dist


def test_all_first_party_names_resolve_from_installed_entry_points() -> None:
    registry = PluginRegistry(env={})
    for (kind, name), dist in KNOWN_DISTRIBUTIONS.items():
        reg = registry.resolve(kind, name)
        info = next(p for p in registry.plugins() if p.name == reg.plugin)
        assert info.distribution == dist
        assert info.version


def test_cli_plugins_list_json_shows_six_distributions() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nextface_cli", "plugins", "list", "--json"],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"},
    )
    data = json.loads(out.stdout)
    dists = {p["distribution"]: p for p in data["plugins"]}
    assert set(KNOWN_DISTRIBUTIONS.values()) <= set(dists)
    for dist in KNOWN_DISTRIBUTIONS.values():
        assert dists[dist]["version"] == "0.1.0"
        assert dists[dist]["registered"], dist
