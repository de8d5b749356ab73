"""Plugin options declared once as a dataclass: checked by the core against the config table
named after the entry point, with the core config's messages, and shown by ``plugins list``."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from nextface_core import hookimpl
from nextface_core.config import load_config
from nextface_core.errors import ConfigError
from nextface_core.options import describe_options, option, parse_options
from nextface_core.plugins import PluginRegistry
from nextface_core.testing.kit import ContractError, check_options


@dataclass(frozen=True)
class ToonOptions:
    bands: int = option(3, "cel-shading bands", min=1, max=8)
    style: str = option("flat", "shading style", choices=("flat", "soft"))
    outline: bool = option(True, "draw the silhouette")
    width: float = option(1.5, "outline width in pixels", min=0.0)
    tint: tuple[float, float, float] = option((1.0, 1.0, 1.0), "linear RGB tint", min=0.0, max=1.0)
    stages: tuple[int, ...] = option((2,), "stages", min=1, max=3)


class Toon:
    def __init__(self, options: ToonOptions) -> None:
        self.options = options


class ToonPlugin:
    @hookimpl
    def nextface_register_renderers(self, register) -> None:
        register("toon", lambda config, options: Toon(options), description="toon", options=ToonOptions)


def _registry() -> PluginRegistry:
    registry = PluginRegistry(entry_points=False, builtin=False, env={})
    registry.add("render_toon", ToonPlugin())
    return registry


def _config(tmp_path, table: str):
    path = tmp_path / "config.toml"
    path.write_text(f"[plugins.render_toon]\n{table}\n")
    return load_config(path), path


def test_the_table_named_after_the_entry_point_reaches_the_factory_checked(tmp_path) -> None:
    config, _ = _config(tmp_path, 'bands = 5\nstyle = "soft"\nwidth = 2\ntint = [0.5, 1, 0.25]\nstages = [2, 3]')
    toon = _registry().create("renderer", "toon", config)
    assert toon.options == ToonOptions(bands=5, style="soft", width=2.0, tint=(0.5, 1.0, 0.25), stages=(2, 3))
    assert isinstance(toon.options.width, float)
    assert _registry().create("renderer", "toon", load_config()).options == ToonOptions()
    assert _registry().create("renderer", "toon", None).options == ToonOptions()


@pytest.mark.parametrize(
    "table, message, hint",
    [
        ("band = 2", "unknown key plugins.render_toon.band", "keys of [plugins.render_toon]: bands, outline, stages, style, tint, width"),
        ('bands = "many"', "plugins.render_toon.bands must be an integer, got str 'many'", "write an integer, e.g. plugins.render_toon.bands = 3"),
        ("bands = 9", "plugins.render_toon.bands = 9 is out of range", "it must be between 1 and 8"),
        ('style = "noir"', "plugins.render_toon.style = 'noir' is not allowed", "use one of ['flat', 'soft']"),
        ("outline = 1", "plugins.render_toon.outline must be true or false, got int 1", ""),
        ("tint = [1, 1]", "plugins.render_toon.tint must be a list of 3 values, got [1, 1]", "write e.g. tint = [1.0, 1.0, 1.0]"),
        ("tint = [1, 2, 1]", "plugins.render_toon.tint[1] = 2.0 is out of range", "it must be between 0.0 and 1.0"),
        ("stages = [4]", "plugins.render_toon.stages[0] = 4 is out of range", "it must be between 1 and 3"),
    ],
)
def test_a_bad_table_is_a_config_error_in_the_core_style(tmp_path, table, message, hint) -> None:
    config, path = _config(tmp_path, table)
    with pytest.raises(ConfigError) as info:
        _registry().create("renderer", "toon", config)
    assert info.value.message == f"{path}: {message}"
    assert info.value.hint.startswith(hint)
    assert info.value.exit_code == 2


def test_an_override_names_itself_as_the_source() -> None:
    config = load_config().with_overrides({"plugins.render_toon": {"bands": 0}})
    with pytest.raises(ConfigError, match=r"^override: plugins\.render_toon\.bands = 0 is out of range"):
        _registry().create("renderer", "toon", config)


def test_a_malformed_options_class_breaks_the_plugin_at_load() -> None:
    @dataclass(frozen=True)
    class Bad:
        path: bytes = option(b"", "bytes are no option type")

    class P:
        @hookimpl
        def nextface_register_renderers(self, register) -> None:
            register("bad", lambda config, options: None, options=Bad)

    registry = PluginRegistry(entry_points=False, builtin=False, env={})
    registry.add("render_bad", P())
    assert registry.names("renderer") == []
    assert "has type" in registry.broken[0].error and "Bad.path" in registry.broken[0].error


def test_describe_options_lists_types_defaults_rules_and_help() -> None:
    lines = [info.describe() for info in describe_options(ToonOptions)]
    assert lines[0] == "bands (int, default 3, 1..8): cel-shading bands"
    assert lines[1] == "style (str, default 'flat', one of ['flat', 'soft']): shading style"
    assert lines[3] == "width (float, default 1.5, >= 0.0): outline width in pixels"
    assert lines[4].startswith("tint (tuple[float, float, float], default (1.0, 1.0, 1.0), 0.0..1.0)")


def test_the_kit_checks_an_options_declaration() -> None:
    assert check_options(ToonOptions) == ["options well formed"]

    @dataclass
    class Mutable:
        x: int = option(1, "x")

    @dataclass(frozen=True)
    class Undocumented:
        x: int = option(0, "", min=1)  # no help, and a default its own rule refuses

    with pytest.raises(ContractError, match="must be a frozen dataclass"):
        check_options(Mutable)
    with pytest.raises(ContractError) as info:
        check_options(Undocumented)
    assert "option x has no help" in str(info.value) and "a default breaks its own rule" in str(info.value)


def test_parse_options_alone() -> None:
    assert parse_options(ToonOptions, {"bands": 2}, "render_toon") == ToonOptions(bands=2)


def test_plugins_list_shows_every_first_party_option() -> None:
    from nextface_cli.main import app

    result = CliRunner().invoke(app, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {(r["kind"], r["name"]): r for p in json.loads(result.output)["plugins"] for r in p["registered"]}
    vertex = rows[("renderer", "vertex")]
    assert vertex["options_table"] == "plugins.render_vertex"
    assert [(o["name"], o["default"]) for o in vertex["options"]] == [("nvdiffrast", "auto"), ("kernels", "auto"), ("shadows", True)]
    if ("renderer", "mitsuba") in rows:
        assert rows[("renderer", "mitsuba")]["options_table"] == "plugins.render_mitsuba"
        assert {o["name"] for o in rows[("renderer", "mitsuba")]["options"]} == {"shadow_gradients", "envmap_height"}
    text = CliRunner().invoke(app, ["plugins", "list"]).output
    assert "    options [plugins.render_vertex]:\n      nvdiffrast (str, default 'auto', one of ['auto', 'never', 'always'])" in text


def test_check_options_reports_a_bad_table_of_a_plugin_the_run_does_not_build(tmp_path) -> None:
    config, path = _config(tmp_path, "bands = 0")
    registry = _registry()
    with pytest.raises(ConfigError, match=r"plugins\.render_toon\.bands = 0 is out of range"):
        registry.check_options(config)
    registry.check_options(load_config().with_overrides({"plugins.not_installed": {"anything": 1}}))


def test_the_fit_command_refuses_a_bad_plugin_table_before_reading_images(tmp_path) -> None:
    from nextface_cli.main import app

    path = tmp_path / "config.toml"
    path.write_text('[plugins.render_vertex]\nnvdiffrast = "sometimes"\n')
    result = CliRunner().invoke(app, ["fit", str(tmp_path / "missing.jpg"), "--config", str(path), "-o", str(tmp_path / "out")])
    assert isinstance(result.exception, ConfigError) and result.exception.exit_code == 2  # main() prints it
    assert result.exception.message == f"{path}: plugins.render_vertex.nvdiffrast = 'sometimes' is not allowed"
