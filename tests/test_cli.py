"""The ``nextface`` command line: help, version, plugin listing, and how errors reach the user.

The first tests run the installed console script in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nextface_cli.main as cli
from nextface_core import __version__
from nextface_core.errors import BackendUnavailableError, InputError

FIRST_PARTY = {
    "render_vertex": ("renderer", "vertex"),
    "render_mitsuba": ("renderer", "mitsuba"),
    "render_redner": ("renderer", "redner"),
    "landmarks_mediapipe": ("detector", "mediapipe"),
    "landmarks_fan": ("detector", "fan"),
    "model_basel": ("model", "basel"),
}


def _nextface(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("nextface")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "nextface_cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_commands() -> None:
    result = _nextface("--help")
    assert result.returncode == 0
    for command in ("fit", "demo", "replay", "plugins", "model"):
        assert re.search(rf"^\W*{command}\s", result.stdout, re.MULTILINE), f"'{command}' missing from --help"


def test_version() -> None:
    result = _nextface("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"nextface {__version__}")


def test_plugins_list_table_shows_the_six_first_party_plugins() -> None:
    result = _nextface("plugins", "list")
    assert result.returncode == 0, result.stderr
    for plugin, (kind, name) in FIRST_PARTY.items():
        distribution = "nextface-" + plugin.replace("_", "-")
        assert re.search(rf"^{plugin}\s+\({distribution} \d+\.\d+\.\d+\)", result.stdout, re.MULTILINE), plugin
        assert re.search(rf"^\s+{kind}\s+{name}\s+\[(ok|unavailable)\]", result.stdout, re.MULTILINE), name


def test_plugins_list_json() -> None:
    result = _nextface("plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["broken"] == []
    plugins = {p["plugin"]: p for p in data["plugins"]}
    assert set(FIRST_PARTY) <= set(plugins)
    for plugin, (kind, name) in FIRST_PARTY.items():
        info = plugins[plugin]
        assert info["distribution"] == "nextface-" + plugin.replace("_", "-")
        assert re.fullmatch(r"\d+\.\d+\.\d+", info["version"])
        assert info["hooks"] and all(h.startswith("nextface_register_") for h in info["hooks"])
        reg = {(r["kind"], r["name"]): r for r in info["registered"]}
        assert (kind, name) in reg, f"{plugin} does not register {kind} '{name}'"
        assert isinstance(reg[(kind, name)]["available"], bool) and reg[(kind, name)]["detail"]


def test_unknown_command_exits_2() -> None:
    result = _nextface("bogus")
    assert result.returncode == 2
    assert "No such command 'bogus'" in result.stderr


def test_a_nextface_error_is_one_line_and_a_fix_without_traceback(tmp_path: Path) -> None:
    image = tmp_path / "face.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    result = _nextface("fit", str(image), "--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2  # a ConfigError is a usage error
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: config file ") and lines[0].endswith("missing.toml does not exist")
    assert lines[1:] == ["fix: check the path given to --config"]
    assert "Traceback" not in result.stderr


# main(): every NextFaceError class maps to its exit code; anything else is internal (70)


@pytest.mark.parametrize(
    ("error", "code", "expected"),
    [
        (
            InputError("image x.png is not an image", "pass a PNG or JPEG"),
            3,
            "error: image x.png is not an image\nfix: pass a PNG or JPEG\n",
        ),
        (BackendUnavailableError("no GPU here"), 4, "error: no GPU here\n"),
        (RuntimeError("boom"), 70, "internal error: RuntimeError: boom (rerun with --debug for the traceback)\n"),
    ],
)
def test_main_maps_errors_to_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception, code: int, expected: str
) -> None:
    def app() -> None:
        raise error

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setitem(cli.state, "debug", False)
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == code
    assert capsys.readouterr().err == expected


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def app() -> None:
        raise InputError("bad input")

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setitem(cli.state, "debug", True)
    with pytest.raises(InputError, match="bad input"):
        cli.main()


# benchmarks/run.py: discovery, table and JSON output, errors


def _runner():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
    spec = importlib.util.spec_from_file_location("benchmarks_run", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench_folder(tmp_path: Path) -> Path:
    (tmp_path / "bench_fast.py").write_text(
        "def run(quick=False):\n    return {'time_ms': 1.23456789, 'quick': quick, 'ratio': 2.0, 'label': 'x'}\n"
    )
    (tmp_path / "bench_broken.py").write_text("def run(quick=False):\n    raise RuntimeError('no backend')\n")
    (tmp_path / "bench_bad.py").write_text("def run(quick=False):\n    return {'figure': [1, 2]}\n")
    (tmp_path / "helper.py").write_text("raise SystemExit('not a benchmark: never imported')\n")
    return tmp_path


def test_benchmark_runner_json_lines(bench_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = _runner()
    assert list(runner.discover(bench_folder)) == ["bad", "broken", "fast"]
    assert runner.main(["fast", "broken", "bad", "--json", "--quick"], folder=bench_folder) == 1
    out = capsys.readouterr()
    records = [json.loads(line) for line in out.out.splitlines()]
    assert [r["benchmark"] for r in records] == ["fast", "broken", "bad"]
    assert records[0]["figures"] == {"time_ms": 1.23456789, "quick": True, "ratio": 2.0, "label": "x"}
    assert records[1]["error"] == "RuntimeError: no backend" and "figures" not in records[1]
    assert "figure 'figure' is list, expected a number or a string" in records[2]["error"]
    assert all(isinstance(r["seconds"], float) for r in records)
    assert "Traceback" in out.err and "no backend" in out.err


def test_benchmark_runner_table_and_unknown_names(bench_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = _runner()
    assert runner.main(["fast"], folder=bench_folder) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"== fast  \(\d+\.\d s\)", lines[0])
    assert lines[1:] == ["   time_ms  1.23457", "   quick    False", "   ratio    2", "   label    x"]
    assert runner.main(["fast", "nope"], folder=bench_folder) == 2
    assert capsys.readouterr().err.strip() == "error: unknown benchmark 'nope'; available: bad, broken, fast"
    assert runner.main([], folder=bench_folder) == 1  # all of them, two fail


def test_real_synthetic_model_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    runner = _runner()
    assert "synthetic_model" in runner.discover()
    assert runner.main(["synthetic_model", "--json", "--quick"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert 0 < record["figures"]["small_write_s"] < 10
