"""docs/writing-plugins.md documents every hook spec (and nothing that is not one), and the
kit and naming facts it states match the code."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from nextface_core import hookspecs
from nextface_core.plugins import KIND_HOOKS
from nextface_core.scaffold import PREFIXES, PluginNames
from nextface_core.testing import kit

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"


def hook_specs() -> dict[str, inspect.Signature]:
    """Every function marked with the ``nextface`` hookspec marker, with its signature."""
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "nextface_spec")
    }


def undocumented(text: str) -> list[str]:
    """Hook specs without a ``### `name(args)` `` section in ``text``, followed by prose."""
    missing = []
    for name, sig in hook_specs().items():
        heading = f"### `{name}({', '.join(sig.parameters)})`"
        section = text.split(heading, 1)[1].split("\n#", 1)[0] if heading in text else ""
        if len(section.strip()) < 80:  # a heading alone is not documentation
            missing.append(name)
    return missing


def test_there_are_hook_specs_to_document() -> None:
    assert set(hook_specs()) == set(KIND_HOOKS.values())  # one registry hook per plugin kind


def test_every_hook_spec_is_documented_in_the_guide() -> None:
    missing = undocumented(GUIDE.read_text(encoding="utf-8"))
    assert not missing, f"document these hooks in {GUIDE.name} under '### `name(args)`': {missing}"


def test_the_check_fails_for_a_guide_missing_a_hook() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    cut = text.replace("### `nextface_register_losses(register)`", "### losses")
    assert undocumented(cut) == ["nextface_register_losses"]


def test_the_guide_names_no_hook_that_does_not_exist() -> None:
    named = set(re.findall(r"nextface_register_\w+", GUIDE.read_text(encoding="utf-8")))
    assert named <= set(hook_specs()), f"stale hook names in the guide: {sorted(named - set(hook_specs()))}"


def test_kit_functions_named_in_the_guide_exist() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:check|synthetic)_\w+|fresh_registry)\(", text))
    assert {"check_plugin", "check_renderer", "check_detector", "check_model", "check_loss", "fresh_registry"} <= named
    assert named <= set(kit.__all__), f"not in nextface_core.testing.kit: {sorted(named - set(kit.__all__))}"


def test_naming_table_and_kinds_match_the_scaffold() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    names = PluginNames.of("toon", "renderer")
    for fact in (names.distribution, names.module, names.entry_point, f"[plugins.{names.entry_point}]"):
        assert f"`{fact}`" in text
    kinds = re.search(r"`--kind` is one of (.*?)\.", text).group(1)
    assert re.findall(r"`(\w+)`", kinds) == list(PREFIXES)
