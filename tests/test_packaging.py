"""Packaging: the root distribution ships every core subpackage, setup.sh's options and
interpreter check, licences and versions in every pyproject, and wheels that work when
installed (not editable) into a fresh venv."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import nextface_core
import nextface_core.version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_core_subpackage_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "nextface_core").rglob("__init__.py")
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert "nextface_cli" in listed


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "./setup.sh --test && .venv/bin/python -m pytest"
    assert command in readme and command in ci


# -- setup.sh ----------------------------------------------------------------------------------


def _setup(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "setup.sh"), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_setup_help_and_unknown_options() -> None:
    shown = _setup("--help")
    assert shown.returncode == 0 and "--test" in shown.stdout and "PYTHON" in shown.stdout
    bad = _setup("--tset")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["setup: error: unknown option --tset", "fix: run ./setup.sh --help for the options"]


def test_setup_refuses_an_unsupported_python_and_names_the_supported_ones(tmp_path: Path) -> None:
    # a stand-in interpreter that reports Python 3.13 (none is installed here), running the real checks
    fake = tmp_path / "python3.13"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -c "import sys; sys.version_info = (3, 13, 0); exec(sys.argv[1])" "$2"\n')
    fake.chmod(0o755)
    done = _setup(PYTHON=str(fake), VENV=str(tmp_path / "venv"))
    assert done.returncode == 2, done.stderr
    assert f"PYTHON={fake} is Python 3.13; NextFace supports 3.10-3.12" in done.stderr
    assert "mediapipe 0.10.21 has no wheel for 3.13" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_setup_installs_the_extras_of_every_command_without_test() -> None:
    text = (ROOT / "setup.sh").read_text()
    assert 'extras="ray,video"' in text and '[ "$test_tools" = 1 ] && extras="$extras,test"' in text
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("imageio-ffmpeg") for r in extras["video"]) and any(r.startswith("ray") for r in extras["ray"])
    assert not any(r.split(">")[0].split("=")[0] in ("ray", "imageio-ffmpeg", "mediapipe") for r in extras["test"])


def test_ci_lints_before_the_tests() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci.index(".ci/lint") < ci.index("./setup.sh --test && .venv/bin/python -m pytest")


# -- packaging metadata ------------------------------------------------------------------------

PROJECTS = [ROOT, *sorted((ROOT / "plugins").iterdir()), ROOT / "examples" / "model_flame"]


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_every_pyproject_has_an_spdx_licence_and_its_licence_file(project: Path) -> None:
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "MIT" and meta["license-files"] == ["LICENSE"]
    assert (project / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    if project != ROOT:
        core = [r for r in meta["dependencies"] if re.match(r"nextface\b(?!-)", r)]
        assert core == ["nextface>=0.1,<0.2"], core  # an upper bound: 0.x minors may break plugins


def test_one_version_source() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in meta["project"] and meta["project"]["dynamic"] == ["version"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "nextface_core.version.__version__"}
    assert metadata.version("nextface") == nextface_core.__version__ == nextface_core.version.__version__
    assert (ROOT / "nextface_core" / "py.typed").is_file()


# -- wheels that work --------------------------------------------------------------------------

SKIP_WHEELS = "NEXTFACE_SKIP_WHEEL_TEST"


@pytest.mark.skipif(os.environ.get(SKIP_WHEELS) == "1", reason=f"{SKIP_WHEELS}=1 (it builds 8 wheels and installs them: minutes)")
def test_built_wheels_install_into_a_fresh_venv_and_run(tmp_path: Path) -> None:
    """``python -m build`` each distribution, install the wheels (not editable) into a fresh
    venv, and run the tool from outside the checkout: first the core alone, then everything."""
    dist = tmp_path / "dist"
    for project in PROJECTS:
        # --no-isolation: the build backend (setuptools>=77, a test dependency) is already here
        built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(project)],
                               capture_output=True, text=True, timeout=600)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels = {w.name.split("-")[0]: w for w in dist.glob("*.whl")}
    assert len(wheels) == len(PROJECTS), sorted(wheels)
    with zipfile.ZipFile(wheels["nextface"]) as whl:
        names = set(whl.namelist())
    for packaged in ("nextface_core/py.typed", "nextface_core/default_config.toml", "nextface/__main__.py",
                     "nextface_core/scaffold/templates/common/pyproject.toml.tmpl", "nextface-0.1.0.dist-info/licenses/LICENSE"):
        assert packaged in names, packaged
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # --no-compile: byte-compiling torch & co. at install time is most of the install's CPU time
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check"]
    nextface = str(venv / "bin" / "nextface")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([nextface, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)

    subprocess.run([*pip, "torch==2.13.0", str(wheels["nextface"])], check=True, timeout=900)
    alone = run("demo", "-o", str(tmp_path / "demo"))
    assert alone.returncode == 4, alone.stderr
    assert alone.stderr.splitlines()[-1] == "fix: in a NextFace source checkout: pip install -e plugins/render_vertex"
    subprocess.run([*pip, *(str(w) for n, w in wheels.items() if n != "nextface")], check=True, timeout=900)
    listed = run("plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["broken"] == [] and data["not_installed"] == []
    quick = tmp_path / "quick.toml"  # the demo's fit, shortened: this checks the install, not the fit
    quick.write_text('[run]\ndevice = "cpu"\n[stage1]\niterations = 100\n[stage2]\niterations = 10\n[stage3]\niterations = 3\n')
    demo = run("demo", "-o", str(tmp_path / "demo"), "--config", str(quick))
    assert demo.returncode == 0, demo.stderr
    assert "rotation error (deg)" in demo.stdout and (tmp_path / "demo" / "demo" / "mesh.obj").is_file()
    scaffold = run("plugins", "new", "toon", "--kind", "renderer", "-o", str(tmp_path / "new"))
    assert scaffold.returncode == 0, scaffold.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import nextface_core; print(nextface_core.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, check=True)
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's copy, not the checkout
