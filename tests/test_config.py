"""The configuration: packaged defaults, user TOML files, overrides, and errors that name the key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from nextface_core.config import DEFAULTS_PATH, load_config, resolve_device
from nextface_core.errors import EXIT_USAGE, ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "user.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load_and_equal_the_packaged_toml() -> None:
    config = load_config()
    with DEFAULTS_PATH.open("rb") as f:
        packaged = tomllib.load(f)
    for section, table in packaged.items():
        assert getattr(config, section).as_dict() == table
    assert config.light.bands == 9 and config.texture.resolution == 256 and config.plugins == {}


def test_user_file_merges_over_the_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "[stage1]\niterations = 10\n\n[stage3]\nlearning_rate = 1\n\n[plugins.mitsuba]\nenvmap_height = 16\n")
    config = load_config(path)
    assert config.stage1.iterations == 10
    assert config.stage3.learning_rate == 1.0 and isinstance(config.stage3.learning_rate, float)
    assert config.stage2.iterations == load_config().stage2.iterations  # untouched keys keep defaults
    assert config.plugins == {"mitsuba": {"envmap_height": 16}}


def test_overrides_win_over_the_file_and_none_is_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path, "[stage1]\niterations = 10\n")
    config = load_config(path, {"stage1.iterations": 5, "light.bands": None})
    assert config.stage1.iterations == 5 and config.light.bands == 9
    again = config.with_overrides({"light.bands": 3})
    assert again.light.bands == 3 and config.light.bands == 9, "with_overrides returns a new config"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[bogus]\nx = 1\n", "[bogus]"),
        ("[stage1]\niterationz = 3\n", "stage1.iterationz"),
        ('[light]\nbands = "nine"\n', "light.bands"),
        ("[run]\nseed = true\n", "run.seed"),
        ("[camera]\noptimize_focal = 1\n", "camera.optimize_focal"),
        ("[light]\nbands = 10\n", "light.bands"),
        ("[texture]\nresolution = 300\n", "texture.resolution"),
        ("[weights]\nphotometric = -1.0\n", "weights.photometric"),
        ("[stage2]\nlearning_rate = nan\n", "stage2.learning_rate"),
        ("[stage2]\nlearning_rate = inf\n", "stage2.learning_rate"),
        ("run = 3\n", "run"),
        ("[plugins]\nmitsuba = 3\n", "plugins.mitsuba"),
    ],
)
def test_bad_values_are_config_errors_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert named in info.value.message and str(tmp_path) in info.value.message
    assert info.value.hint, "every config error says how to fix it"
    assert info.value.exit_code == EXIT_USAGE


def test_out_of_range_hint_gives_the_range_and_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="between 1 and 9"):
        load_config(_write(tmp_path, "[light]\nbands = 0\n"))
    with pytest.raises(ConfigError, match=r"\[256, 512, 1024, 2048\]"):
        load_config(_write(tmp_path, "[texture]\nresolution = 300\n"))
    with pytest.raises(ConfigError, match="override: stage1.iterations = -1 is out of range"):
        load_config(None, {"stage1.iterations": -1})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(_write(tmp_path, "[run\nseed = 1\n"))
    assert "line 1" in info.value.message
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)  # a folder


def test_sections_are_read_only_and_unknown_names_are_clear() -> None:
    config = load_config()
    with pytest.raises(AttributeError, match="read-only"):
        config.stage1.iterations = 3
    with pytest.raises(AttributeError, match="stage1.iterationz"):
        _ = config.stage1.iterationz
    with pytest.raises(AttributeError, match=r"\[bogus\]"):
        _ = config.bogus


def test_resolve_device() -> None:
    cuda = torch.cuda.is_available()
    assert resolve_device(load_config(None, {"run.device": "cpu"})) == "cpu"
    assert resolve_device(load_config()) == ("cuda" if cuda else "cpu")
    with pytest.raises(ConfigError, match="'gpu' is not a device"):
        resolve_device(load_config(None, {"run.device": "gpu"}))
    if not cuda:
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device(load_config(None, {"run.device": "cuda:0"}))


def test_wrong_type_messages_say_what_to_write() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"light.bands": "nine"})
    assert info.value.message == "override: light.bands must be an integer, got str 'nine'"
    assert info.value.hint == "write an integer, e.g. light.bands = 9"
    with pytest.raises(ConfigError, match="must be true or false") as info:
        load_config(None, {"run.skip_no_face": 1})
    assert info.value.hint == "write true or false, e.g. run.skip_no_face = false"
    with pytest.raises(ConfigError) as info:
        load_config(None, {"run.device": 3})
    assert info.value.hint == 'write a string, e.g. run.device = "auto"'
