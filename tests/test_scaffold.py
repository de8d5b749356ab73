"""``nextface plugins new``: the scaffolded distributions install, are listed, and pass their
contract tests out of the box (acceptance: a renderer written from the scaffold passes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest
from typer.testing import CliRunner

from nextface_cli.main import app
from nextface_core.errors import UsageError
from nextface_core.scaffold import PREFIXES, PluginNames, create_plugin

KINDS = {"renderer": "toon", "detector": "dots", "model": "tiny_head", "loss": "sh_smooth"}


def _env(*paths) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
    env.pop("NEXTFACE_PLUGINS", None)
    env.pop("NEXTFACE_BLOCK_PLUGINS", None)
    return env


def test_names_follow_the_first_party_conventions() -> None:
    n = PluginNames.of("tiny_head", "model")
    assert (n.distribution, n.module, n.entry_point, n.class_prefix) == (
        "nextface-model-tiny-head", "nextface_model_tiny_head", "model_tiny_head", "TinyHead")
    assert PluginNames.of("fan2", "detector").module == "nextface_landmarks_fan2"


@pytest.mark.parametrize("name", ["Toon", "my-fan", "2d", "", "a" * 41])
def test_invalid_names_are_usage_errors_naming_the_rule(tmp_path, name) -> None:
    with pytest.raises(UsageError, match="is not a valid name") as info:
        create_plugin(name, "renderer", tmp_path)
    assert "lower-case letters" in info.value.hint
    assert not any(tmp_path.iterdir())


def test_an_existing_folder_is_not_overwritten(tmp_path) -> None:
    folder = create_plugin("toon", "renderer", tmp_path)
    marker = folder / "nextface_render_toon" / "__init__.py"
    marker.write_text("# mine\n")
    with pytest.raises(UsageError, match="already exists and is not empty"):
        create_plugin("toon", "renderer", tmp_path)
    assert marker.read_text() == "# mine\n"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_gets_a_pyproject_entry_point_module_readme_and_test(tmp_path, kind) -> None:
    name = KINDS[kind]
    names = PluginNames.of(name, kind)
    folder = create_plugin(name, kind, tmp_path)
    assert folder == tmp_path / names.distribution
    project = tomllib.loads((folder / "pyproject.toml").read_text())
    assert project["project"]["name"] == names.distribution
    assert project["project"]["entry-points"]["nextface"] == {names.entry_point: names.module}
    source = (folder / names.module / "__init__.py").read_text()
    assert f'register("{name}", create' in source and "$" not in source  # every placeholder filled
    assert (folder / "tests" / f"test_{names.entry_point}.py").is_file()
    assert f"[plugins.{names.entry_point}]" in (folder / "README.md").read_text()


def test_cli_scaffolds_and_prints_the_next_steps(tmp_path) -> None:
    result = CliRunner().invoke(app, ["plugins", "new", "toon", "--kind", "renderer", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"pip install -e {tmp_path / 'nextface-render-toon'}" in result.output
    assert (tmp_path / "nextface-render-toon" / "nextface_render_toon" / "__init__.py").is_file()
    bad = CliRunner().invoke(app, ["plugins", "new", "toon", "--kind", "shader", "-o", str(tmp_path)])
    assert bad.exit_code == 2 and "'shader' is not one of" in bad.output


def test_a_scaffolded_renderer_installs_is_listed_and_passes_its_contract_tests(tmp_path) -> None:
    folder = create_plugin("toon", "renderer", tmp_path / "src")
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "--target", str(site), str(folder)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    assert (site / "nextface_render_toon-0.1.0.dist-info" / "entry_points.txt").is_file()
    listed = subprocess.run(
        [sys.executable, "-c", "from nextface_cli.main import main; main()", "plugins", "list", "--json"],
        capture_output=True, text=True, env=_env(site), timeout=300,
    )
    assert listed.returncode == 0, listed.stderr
    plugins = {p["plugin"]: p for p in json.loads(listed.stdout)["plugins"]}
    toon = plugins["render_toon"]
    assert toon["distribution"] == "nextface-render-toon" and toon["version"] == "0.1.0"
    assert [(r["kind"], r["name"], r["available"]) for r in toon["registered"]] == [("renderer", "toon", True)]
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True, text=True, env=_env(site), cwd=tmp_path, timeout=300,
    )
    assert tests.returncode == 0 and "1 passed" in tests.stdout, tests.stdout + tests.stderr


def test_every_scaffolded_kind_passes_its_own_contract_tests(tmp_path) -> None:
    pytest.importorskip("nextface_render_vertex")  # the detector test renders its faces with it
    folders = [create_plugin(name, kind, tmp_path) for kind, name in KINDS.items()]
    assert sorted(PREFIXES) == sorted(KINDS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *[str(f / "tests") for f in folders]],
        capture_output=True, text=True, env=_env(*folders), cwd=tmp_path, timeout=300,
    )
    assert run.returncode == 0 and f"{len(KINDS)} passed" in run.stdout, run.stdout + run.stderr
