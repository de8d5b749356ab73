"""Quiet, informative output: no foreign log lines, warnings as ``warning:`` lines, progress
on stderr (a line at least every 10 s when stderr is not a terminal), -v / -q.

The MediaPipe and Mitsuba checks run the real libraries: their own log lines must appear
with -v (so the check can fail) and never without.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from nextface_cli.progress import LineProgress, image_progress, progress
from nextface_core import logs
from nextface_core.config import load_config
from nextface_core.dataset import DONE, ImageRecord, TaskOutcome, TaskSpec
from nextface_core.dataset.runner import _execute

CODE = "import sys; from nextface_cli.main import main; sys.argv = ['nextface'] + sys.argv[1:]; main()"
SFM = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "sfm-as-bfm"
#: the lines a fit may print on stderr: progress lines, and nothing else
PROGRESS_LINE = re.compile(r"^stage [123]: \d+/\d+(, loss \S+)?(, \S+ it/s)?(, ETA \S+)?(, done in \S+)?$")


def _nextface(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    for key in ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL"):  # as a user's shell has them: unset
        env.pop(key, None)
    return subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture
def restore_logging():
    """Undo logs.configure after a test."""
    saved = (logs.verbosity(), warnings.showwarning, logging.getLogger().level)
    yield
    logs.configure(saved[0])
    warnings.showwarning = saved[1]
    logging.getLogger().setLevel(saved[2])
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_nextface", False)]:
        root.removeHandler(handler)


# -- progress ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_prints_at_least_every_10_seconds_with_rate_and_eta() -> None:
    stream, clock = io.StringIO(), Clock()
    bar = LineProgress(stream, clock=clock)
    bar.update("stage 2", 1, 200, 0.5)
    for it in range(2, 200):
        clock.now += 0.5  # 2 it/s: a line every 20 iterations
        bar.update("stage 2", it, 200, 0.5 / it)
    clock.now += 0.5
    bar.update("stage 2", 200, 200, 0.001)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "stage 2: 1/200, loss 0.5"
    assert lines[1] == "stage 2: 21/200, loss 0.02381, 2.0 it/s, ETA 1m30s"
    assert len(lines) == 1 + 9 + 1 and lines[-1] == "stage 2: 200/200, loss 0.001, 2.0 it/s, done in 1m40s"
    times = [int(line.split(":")[1].split("/")[0]) for line in lines]
    assert max(b - a for a, b in zip(times, times[1:])) <= 20  # 20 iterations = 10 s here
    assert all(PROGRESS_LINE.match(line) for line in lines)


def test_a_phase_says_done_once_and_starts_again_when_its_count_does() -> None:
    """Stage 1's line search may run past its iteration count; the next image's stage 1 counts from 1 again."""
    stream, clock = io.StringIO(), Clock()
    bar = LineProgress(stream, clock=clock)
    for image in range(2):
        for it in (1, 2, 3, 3, 3):
            clock.now += 0.1
            bar.update("stage 1", it, 3, 1.0 / it)
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["stage 1: 1/3", "stage 1: 3/3"] * 2, lines
    assert lines[1].endswith("done in 0s") and lines[3].endswith("done in 0s")


def test_progress_goes_to_a_non_terminal_stream_as_lines_and_nowhere_with_quiet(restore_logging) -> None:
    stream = io.StringIO()
    with progress(stream) as update:
        update("stage 1", 5, 10, 1.0)
    assert stream.getvalue() == "stage 1: 5/10, loss 1\n"
    logs.configure(logs.QUIET)
    with progress(stream) as update:
        update("stage 1", 10, 10, 1.0)
    assert stream.getvalue() == "stage 1: 5/10, loss 1\n"


class _SlowBackend:
    """One worker whose tasks each take ``seconds`` of the fake clock (``wait`` advances it);
    a handle is the task's name."""

    workers = 1

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds
        self.running: dict[str, tuple[TaskSpec, float]] = {}

    def submit(self, spec: TaskSpec) -> str:
        self.running[spec.task] = (spec, self.clock.now)
        return spec.task

    def wait(self, handles: list[str], timeout: float) -> list[tuple[str, TaskOutcome]]:
        self.clock.now += timeout
        done = [h for h in handles if self.clock.now - self.running[h][1] >= self.seconds]
        return [(h, TaskOutcome(h, {key: {"status": DONE} for key, _, _ in self.running[h][0].images})) for h in done]

    def cancel(self, handles: list[str]) -> None:
        pass


def test_a_dataset_prints_a_progress_line_at_least_every_10_seconds_while_a_task_runs() -> None:
    """``fit-dataset``'s progress: 3 images of 25 s each on one worker, stderr not a terminal."""
    clock = Clock()
    written: list[tuple[float, str]] = []

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            written.extend((clock.now, line) for line in text.splitlines() if line)
            return len(text)

    images = image_progress(LineProgress(Stream(), clock=clock).update)
    keys = ("a", "b", "c")
    specs = {k: TaskSpec(k, k, ((k, f"{k}.png", k),), "out", {}) for k in keys}
    tasks = {k: [ImageRecord(k, f"{k}.png", task=k)] for k in keys}
    assert _execute(_SlowBackend(clock, 25.0), specs, tasks, 0, images, 0.0, lambda: None, 1e9) == (3, 0, 0)
    times = [t for t, _ in written]
    assert written[0] == (101.0, "images: 0/3")
    assert written[-1] == (175.0, "images: 3/3, 2.4 it/min, done in 1m14s")
    assert max(b - a for a, b in zip([100.0, *times], times)) <= 10.0, written
    assert any(line.startswith("images: 1/3, ") and "ETA " in line for _, line in written)


# -- Python logging and warnings ---------------------------------------------------------------


def test_ray_starts_without_foreign_lines_and_shows_them_with_verbose() -> None:
    """Ray's own warnings (a local runtime says "Token authentication is enabled ...") go
    through NextFace's logging: hidden by default, ``warning: ...`` lines with -v."""
    pytest.importorskip("ray")
    code = (
        "import sys; from nextface_core import logs; logs.configure(int(sys.argv[1]));"
        "from nextface_core.dataset import RayBackend; RayBackend(1, None, 'cpu').close()"
    )
    runs = {
        level: subprocess.run([sys.executable, "-c", code, str(level)], capture_output=True, text=True, timeout=300)
        for level in (logs.NORMAL, logs.VERBOSE)
    }
    assert runs[logs.NORMAL].returncode == 0 and runs[logs.NORMAL].stderr == "", runs[logs.NORMAL].stderr
    shown = runs[logs.VERBOSE].stderr.splitlines()
    assert runs[logs.VERBOSE].returncode == 0 and shown, runs[logs.VERBOSE].stderr
    assert all(line.startswith("warning: ") or not line.startswith(("Token", "WARNING")) for line in shown), shown


def test_warnings_are_warning_lines_and_quiet_hides_them(restore_logging) -> None:
    stream = io.StringIO()
    logs.configure(logs.NORMAL, stream)
    warnings.warn_explicit("2 faces found in a.png", UserWarning, "/x/nextface_landmarks_mediapipe/detector.py", 1)
    warnings.warn_explicit("GetPrototype() is deprecated", UserWarning, "/x/site-packages/google/protobuf/db.py", 1)
    logging.getLogger("nextface_core.fitting").info("not shown by default")
    logging.getLogger("nextface_core.images").warning("rotated by EXIF")
    logging.getLogger("matplotlib.font_manager").warning("building the font cache")
    assert stream.getvalue().splitlines() == ["warning: 2 faces found in a.png", "warning: rotated by EXIF"]
    stream = io.StringIO()
    logs.configure(logs.QUIET, stream)
    warnings.warn_explicit("2 faces found", UserWarning, "/x/nextface_core/a.py", 1)
    logging.getLogger("nextface_core.images").error("broken")
    assert stream.getvalue().splitlines() == ["error: broken"]


def test_native_stderr_keeps_only_error_lines_of_fd_2(restore_logging, capfd) -> None:
    logs.configure(logs.NORMAL)
    with logs.native_stderr():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"W0000 00:00:1764600000.000 12 inference_feedback_manager.cc:114] Feedback manager\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"E0000 00:00:1764600000.000 12 graph.cc:1] graph broke\n")
        os.write(2, b"a line of our own, written meanwhile\n")
    assert capfd.readouterr().err.splitlines() == [
        "error: E0000 00:00:1764600000.000 12 graph.cc:1] graph broke",
        "a line of our own, written meanwhile",
    ]
    logs.configure(logs.VERBOSE)
    with logs.native_stderr():
        os.write(2, b"INFO: shown with -v\n")
    assert "INFO: shown with -v" in capfd.readouterr().err


# -- the real native libraries -----------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).resize((256, 256)).save(path)
    return path


def test_mediapipe_logs_only_with_verbose(astronaut: Path, tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    quiet = _nextface("landmarks", str(astronaut), "-o", str(tmp_path / "a.json"), "--landmarks", "mediapipe")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    loud = _nextface("-v", "landmarks", str(astronaut), "-o", str(tmp_path / "b.json"), "--landmarks", "mediapipe")
    assert loud.returncode == 0, loud.stderr
    assert "XNNPACK" in loud.stderr or re.search(r"^[IW]\d{4} ", loud.stderr, re.M), loud.stderr  # the check can fail


def _fit_args(astronaut: Path, tmp_path: Path) -> list[str]:
    config = tmp_path / "quick.toml"
    config.write_text("[light]\nbands = 3\n[stage1]\niterations = 100\n[stage2]\niterations = 8\n[stage3]\niterations = 4\n")
    return [
        "fit", str(astronaut), "-o", str(tmp_path / "out"), "--config", str(config), "--model-path", str(SFM),
        "--landmarks", "mediapipe", "--renderer", "vertex", "--device", "cpu",
    ]  # fmt: skip


@pytest.mark.skipif(not SFM.is_dir(), reason=f"real test model folder {SFM} is absent")
def test_a_real_fit_logged_to_a_file_prints_progress_lines_and_nothing_foreign(astronaut: Path, tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    done = _nextface(*_fit_args(astronaut, tmp_path), env={"NEXTFACE_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    # NextFace's own warnings are ``warning:`` lines (here: no dense-landmark calibration for
    # this model, said once); anything else that is not progress came from a native library
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "has no mediapipe478 calibration" in warnings[0], done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("warning: ")]
    foreign = [line for line in lines if not PROGRESS_LINE.match(line)]
    assert foreign == [], done.stderr
    assert {line.split(":")[0] for line in lines} == {"stage 1", "stage 2", "stage 3"}
    assert "astronaut: landmark error" in done.stdout  # the result stays on stdout


def test_the_demo_logged_to_a_file_prints_progress_lines_and_nothing_foreign(tmp_path: Path) -> None:
    """``nextface demo`` is a fit too: its stages report progress on stderr like ``fit``."""
    config = tmp_path / "short.toml"
    config.write_text("[stage1]\niterations = 20\n[stage2]\niterations = 3\n[stage3]\niterations = 2\n")
    done = _nextface("demo", "-o", str(tmp_path / "demo"), "--config", str(config))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [line for line in lines if not PROGRESS_LINE.match(line)] == [], done.stderr
    assert "stage 2: 3/3, loss" in done.stderr and "stage 3: 2/2, loss" in done.stderr, done.stderr
    assert "results in" in done.stdout


@pytest.mark.skipif(not SFM.is_dir(), reason=f"real test model folder {SFM} is absent")
def test_a_real_fit_in_a_terminal_draws_bars_and_nothing_foreign(astronaut: Path, tmp_path: Path) -> None:
    """stderr on a pseudo-terminal, as in an interactive shell: rich bars, no native log lines."""
    pytest.importorskip("mediapipe")
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NEXTFACE_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "120", "TERM": "xterm"}
    for key in ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL"):
        env.pop(key, None)
    child = subprocess.Popen([sys.executable, "-c", CODE, *_fit_args(astronaut, tmp_path)], stdout=subprocess.PIPE,
                             stderr=follower, env=env, text=True)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout = child.stdout.read()
    assert child.wait(timeout=600) == 0
    os.close(leader)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    assert "stage 2" in screen and "8/8" in screen, screen
    assert not re.search(r"XNNPACK|absl|^[IWE]\d{4} |inference_feedback|landmark_projection", screen, re.M), screen
    assert "astronaut: landmark error" in stdout


def _mitsuba_render(verbosity: int, samples: int) -> subprocess.CompletedProcess[str]:
    code = f"""
import torch
from nextface_core import logs
from nextface_core.config import load_config
from nextface_core.plugins import PluginRegistry
from nextface_core.synthetic import synthetic_model
from nextface_core.synthetic import render_synthetic, synthetic_scene
logs.configure({verbosity})
config = load_config(overrides={{"run.device": "cpu", "light.bands": 2, "render.final_samples": {samples}}})
model = synthetic_model("small")
renderer = PluginRegistry().create("renderer", "mitsuba", config)
render_synthetic(model, synthetic_scene(model, image_size=32, bands=2), renderer, config, image_size=32)
print("rendered")
"""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_mitsuba_sampler_warning_only_with_verbose() -> None:
    pytest.importorskip("mitsuba")
    from nextface_render_mitsuba.backend import check

    if not check().ok:
        pytest.skip(f"mitsuba cannot run here: {check().detail}")
    loud = _mitsuba_render(logs.VERBOSE, 8)
    assert "rendered" in loud.stdout, loud.stderr
    assert "LowDiscrepancySampler" in loud.stdout + loud.stderr  # 8 spp is not a square: Mitsuba warns (the check can fail)
    quiet = _mitsuba_render(logs.NORMAL, 8)
    assert "rendered" in quiet.stdout, quiet.stderr
    assert "LowDiscrepancySampler" not in quiet.stdout + quiet.stderr and quiet.stderr == ""
    default = _mitsuba_render(logs.VERBOSE, load_config().render.final_samples)
    assert "LowDiscrepancySampler" not in default.stdout + default.stderr, default.stderr


def test_default_sample_counts_are_squares_of_powers_of_two() -> None:
    render = load_config().render
    for samples in (render.samples, render.final_samples):
        root = math.isqrt(samples)
        assert root * root == samples and samples & (samples - 1) == 0, samples
