"""Config you can see: ``nextface config show`` / ``init``, discovery (--config, then
$NEXTFACE_CONFIG, then the per-user config folder), NEXTFACE_<SECTION>_<KEY> variables,
--json output, shell completion, ``python -m nextface``, and the core alone (exit 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nextface_core import __version__
from nextface_core.config import load_config
from nextface_core.config_sources import effective_config, env_overrides
from nextface_core.errors import ConfigError

CODE = "import sys; from nextface_cli.main import main; sys.argv = ['nextface'] + sys.argv[1:]; main()"
#: every first-party plugin blocked: what a user with only `pip install nextface` has
CORE_ONLY = {"NEXTFACE_BLOCK_PLUGINS": "render_vertex,render_mitsuba,render_redner,landmarks_mediapipe,landmarks_fan,model_basel"}


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTFACE_")}
    return {**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "OMP_NUM_THREADS": "1", **extra}


def _nextface(*args: str, env: dict[str, str], module: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the CLI from the folder above the checkout (install hints then show absolute paths)."""
    command = [sys.executable, "-m", "nextface"] if module else [sys.executable, "-c", CODE]
    cwd = Path(env["XDG_CONFIG_HOME"]).parent
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd)


def test_discovery_order_and_origins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # platformdirs' user config folder
    user = tmp_path / "xdg" / "nextface" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[run]\nrenderer = "mitsuba"\nseed = 3\n')
    named = tmp_path / "named.toml"
    named.write_text("[run]\nseed = 5\n")
    given = tmp_path / "given.toml"
    given.write_text("[run]\nseed = 7\n")
    env = _clean_env(tmp_path)
    assert effective_config(None, env=env).origin("run.seed") == f"file {user} (from user config folder)"
    assert effective_config(None, env=env).run.renderer == "mitsuba"
    env["NEXTFACE_CONFIG"] = str(named)
    cfg = effective_config(None, env=env)
    assert (cfg.run.seed, cfg.run.renderer) == (5, "vertex")  # one file only: the named one
    assert cfg.origin("run.seed") == f"file {named} (from NEXTFACE_CONFIG)"
    env["NEXTFACE_STAGE2_ITERATIONS"] = "50"
    env["NEXTFACE_RUN_DEVICE"] = "cpu"
    cfg = effective_config(given, {"run.renderer": "mitsuba"}, env=env)
    assert (cfg.run.seed, cfg.stage2.iterations, cfg.run.device, cfg.run.renderer) == (7, 50, "cpu", "mitsuba")
    assert [cfg.origin(k) for k in ("run.seed", "stage2.iterations", "run.renderer", "light.bands")] == [
        f"file {given}",
        "environment NEXTFACE_STAGE2_ITERATIONS",
        "option",
        "default",
    ]


def test_the_demo_finds_its_config_like_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo read only ``--config``: $NEXTFACE_CONFIG and NEXTFACE_* variables were ignored."""
    from nextface_core.demo import DEMO_OVERRIDES, demo_config

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no user config file
    for name in [n for n in os.environ if n.startswith("NEXTFACE_")]:
        monkeypatch.delenv(name)
    assert demo_config().stage2.iterations == DEMO_OVERRIDES["stage2.iterations"]  # its quicker settings
    named = tmp_path / "named.toml"
    named.write_text("[stage2]\niterations = 3\n")
    monkeypatch.setenv("NEXTFACE_CONFIG", str(named))
    monkeypatch.setenv("NEXTFACE_STAGE3_ITERATIONS", "2")
    cfg = demo_config()
    assert (cfg.stage2.iterations, cfg.stage3.iterations) == (3, 2)
    assert cfg.origin("stage2.iterations") == f"file {named} (from NEXTFACE_CONFIG)"


def test_environment_variables_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert env_overrides({"NEXTFACE_CACHE_DIR": "/x", "NEXTFACE_PLUGINS": "a", "NEXTFACE_LIGHT_BANDS": "4"}) == {
        "light.bands": (4, "NEXTFACE_LIGHT_BANDS")
    }
    with pytest.raises(ConfigError, match="NEXTFACE_STAGE2_ITERATIONZ: \\[stage2\\] has no key iterationz"):
        env_overrides({"NEXTFACE_STAGE2_ITERATIONZ": "3"})
    with pytest.raises(ConfigError, match="environment NEXTFACE_LIGHT_BANDS: light.bands = 12 is out of range"):
        effective_config(None, env={"NEXTFACE_LIGHT_BANDS": "12"})


def test_config_show_text_and_json(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[stage1]\niterations = 10\n[plugins.landmarks_mediapipe]\nmax_faces = 2\n")
    env = _clean_env(tmp_path, NEXTFACE_RUN_SEED="4")
    shown = _nextface("config", "show", "--config", str(config), "--renderer", "mitsuba", env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"# config file: {config} (--config)"

    def row(start: str) -> str:
        return next(line for line in lines if line.startswith(start))

    assert row("renderer = ").split("#")[1].strip() == "option"
    assert row("seed = ").split("#")[1].strip() == "environment NEXTFACE_RUN_SEED"
    assert row("iterations = 10 ").split("#")[1].strip() == f"file {config}"
    assert "the model plugin's folder" in row("path = ") and "nextface/basel" in row("path = ")
    assert "[plugins.landmarks_mediapipe]" in shown.stdout
    data = json.loads(_nextface("config", "show", "--json", env=env).stdout)
    assert data["config_file"] is None
    assert data["config"]["run"]["seed"] == {"value": 4, "origin": "environment NEXTFACE_RUN_SEED"}
    assert data["config"]["light"]["bands"] == {"value": load_config().light.bands, "origin": "default"}


def test_config_init_writes_a_commented_config_that_loads_as_the_defaults(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    target = tmp_path / "mine.toml"
    done = _nextface("config", "init", str(target), env=env)
    assert done.returncode == 0, done.stderr
    text = target.read_text()
    assert load_config(target).as_dict() == load_config().as_dict()  # everything commented out
    assert "# samples = 16" in text and "[render]" in text and "nextface config show" in text
    uncommented = text.replace("# iterations = 200", "iterations = 20")
    target.write_text(uncommented)
    assert load_config(target).stage2.iterations == 20  # uncommenting a line is all it takes
    again = _nextface("config", "init", str(target), env=env)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr


def test_python_m_nextface_and_shell_completion(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    assert _nextface("--version", env=env, module=True).stdout.strip() == f"nextface {__version__}"
    completion = _nextface("--show-completion", "bash", env=env)
    assert completion.returncode == 0 and "_NEXTFACE_COMPLETE" in completion.stdout, completion.stderr


def test_landmarks_json_output(tmp_path: Path) -> None:
    from nextface_core.synthetic.dataset import write_synthetic_dataset
    from nextface_model_basel.testing import write_synthetic_basel

    from nextface_core.landmark_files import read_landmarks, write_landmarks
    from nextface_core.landmarks import LandmarkSet

    ds = write_synthetic_dataset(tmp_path / "ds", "basel", write_synthetic_basel, count=2, size=64)
    by_file_name = {  # `nextface landmarks` names images by file name
        s: LandmarkSet(s, v.points, v.confidence, v.found, [f"{n}.png" for n in v.names])
        for s, v in read_landmarks(ds.landmarks).items()
    }
    write_landmarks(tmp_path / "given.json", by_file_name)
    env = _clean_env(tmp_path)
    done = _nextface("landmarks", str(ds.images), "-o", str(tmp_path / "l.json"), "--landmarks", "file",
                     "--landmarks-file", str(tmp_path / "given.json"), "--json", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["output"] == str(tmp_path / "l.json") and data["images"] == 2 and data["found"] == 2
    assert data["no_face"] == [] and data["schemas"]["ibug68"] == 68


def test_fit_json_output(tmp_path: Path) -> None:
    from nextface_core.synthetic.dataset import write_synthetic_dataset
    from nextface_model_basel.testing import write_synthetic_basel

    ds = write_synthetic_dataset(tmp_path / "ds", "basel", write_synthetic_basel, count=1, size=64)
    face = next(ds.images.glob("*.png"))
    env = _clean_env(tmp_path, NEXTFACE_CACHE_DIR=str(tmp_path / "cache"))
    done = _nextface("fit", str(face), "-o", str(tmp_path / "out"), "--config", str(ds.config), "--json", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["summary_file"] == str(tmp_path / "out" / "summary.json") and data["failed"] == []
    assert [row["name"] for row in data["images"]] == [face.stem] and data["images"][0]["landmark_error_px"] < 5


def test_with_the_core_only_demo_and_fit_say_what_to_install_and_exit_4(tmp_path: Path) -> None:
    env = _clean_env(tmp_path, **CORE_ONLY)
    root = Path(__file__).resolve().parents[1]
    demo = _nextface("demo", "-o", str(tmp_path / "demo"), env=env)
    assert demo.returncode == 4, demo.stderr
    assert demo.stderr.splitlines() == [
        "error: renderer 'vertex' is not installed (registered renderers: none)",
        f"fix: pip install -e {root / 'plugins/render_vertex'}",
    ]
    photo = tmp_path / "p.png"
    photo.write_bytes(b"")
    fit = _nextface("fit", str(photo), "-o", str(tmp_path / "out"), env=env)
    assert fit.returncode == 4, fit.stderr
    error, fix = fit.stderr.splitlines()
    assert (
        error
        == "error: renderer 'vertex', detector 'mediapipe', model 'basel' are not installed (this installation lacks these plugins)"
    )
    assert fix == "fix: pip install " + " ".join(
        f"-e {root / 'plugins' / p}" for p in ("render_vertex", "landmarks_mediapipe", "model_basel")
    )
    assert not (tmp_path / "demo").exists() and not (tmp_path / "out").exists()
    listed = _nextface("plugins", "list", env=env)
    assert (
        f"nextface-render-mitsuba  NOT INSTALLED (renderer mitsuba): pip install -e {root / 'plugins/render_mitsuba'}"
        in listed.stdout
    )
