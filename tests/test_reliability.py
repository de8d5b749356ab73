"""Reliability of ``nextface fit``, run as a user runs it (a subprocess of the real CLI).

One table lists every bad input with the exit code and a piece of the one-line message it
must give; every row also checks that stderr holds no traceback and that no output file was
written. The fits that must start use the tiny synthetic dataset (64 px faces, the small
synthetic model in the Basel file layouts, exact landmarks through ``--landmarks file``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from nextface_core.config import load_config
from nextface_core.synthetic.dataset import write_synthetic_dataset
from nextface_model_basel.testing import write_synthetic_basel
from nextface_core.images import load_image
from nextface_core.landmark_files import read_landmarks, write_landmarks
from nextface_core.landmarks import LandmarkSet

CODE = "import sys; from nextface_cli.main import main; sys.argv = ['nextface'] + sys.argv[1:]; main()"
SIZE = 64


def nextface(args: list[str], cache: Path, **kw) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a fresh interpreter; model cache in ``cache``."""
    env = {**os.environ, "NEXTFACE_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True, env=env, timeout=120, **kw)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three synthetic faces and their files, plus the bad inputs the table refers to."""
    root = tmp_path_factory.mktemp("reliability")
    ds = write_synthetic_dataset(root / "ds", "basel", write_synthetic_basel, count=3, size=SIZE)
    face = ds.images / "face000.png"
    bad = root / "bad"
    bad.mkdir()
    (bad / "random.png").write_bytes(bytes(range(256)) * 4)
    png = face.read_bytes()
    (bad / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "empty").mkdir()
    (root / "text_only").mkdir()
    (root / "text_only" / "notes.txt").write_text("not a photo")
    (root / "a_file").write_text("a regular file, so a_file/out cannot be a folder")
    (root / "empty_model").mkdir()
    Image.new("RGB", (40, 48), (128, 100, 90)).save(root / "tiny.png")
    Image.new("RGB", (8100, 80), (128, 100, 90)).save(root / "huge.png")  # > 8000 px, still small on disk
    wrong_layout = root / "wrong_layout_model"  # real HDF5, one dataset of the wrong shape
    wrong_layout.mkdir()
    for f in ds.model.iterdir():
        (wrong_layout / f.name).write_bytes(f.read_bytes())
    with h5py.File(next(wrong_layout.glob("model2017*.h5")), "r+") as h5:
        del h5["shape/model/pcaVariance"]
        h5["shape/model/pcaVariance"] = np.ones(3, dtype=np.float32)
    corrupt_model = root / "corrupt_model"
    corrupt_model.mkdir()
    for f in ds.model.iterdir():
        (corrupt_model / f.name).write_bytes(f.read_bytes()[:300])
    configs = {
        "unknown_key": "[stage2]\niterationz = 3\n",
        "wrong_type": '[stage2]\niterations = "many"\n',
        "out_of_range": "[light]\nbands = 12\n",
        "not_toml": "[stage2\niterations = ",
    }
    for name, text in configs.items():
        (root / f"{name}.toml").write_text(text)
    # image modes that must work: grayscale, RGBA, 16-bit grayscale, each with face000's landmarks
    modes = root / "modes"
    modes.mkdir()
    rgb = np.asarray(Image.open(face).convert("RGB"))
    Image.fromarray(rgb).convert("L").save(modes / "gray.png")
    Image.fromarray(np.concatenate([rgb, np.full((SIZE, SIZE, 1), 255, np.uint8)], axis=2), "RGBA").save(modes / "rgba.png")
    gray16 = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.uint16) * 257
    Image.fromarray(gray16.astype(np.int32), "I").convert("I;16").save(modes / "sixteen.png")
    Image.fromarray(rgb).convert("CMYK").save(modes / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(modes / "exif.jpg", quality=95, exif=exif)
    lms = read_landmarks(ds.landmarks)
    names = ["cmyk", "exif", "gray", "rgba", "sixteen"]
    n = len(names)
    sets = {
        s: LandmarkSet(s, v.points[:1].repeat(n, 1, 1), v.confidence[:1].repeat(n, 1), v.found[:1].repeat(n), names)
        for s, v in lms.items()
    }
    write_landmarks(modes / "landmarks.json", sets, {name: (SIZE, SIZE) for name in names})
    faceless = {  # face000 without a face, face001 with one (a file holding no face at all is refused)
        s: LandmarkSet(s, v.points[:2], v.confidence[:2], v.found[:2] & torch.tensor([False, True]), ["face000", "face001"])
        for s, v in lms.items()
    }
    write_landmarks(root / "no_face.json", faceless, {"face000": (SIZE, SIZE), "face001": (SIZE, SIZE)})
    # a real checkpoint (stage 1 only), then a truncated and a tampered copy
    ck = root / "ck"
    done = nextface(["fit", str(face), "-o", str(ck), "--config", str(ds.config), "--skip-stage", "2", "--skip-stage", "3"],
                    root / "cache")
    assert done.returncode == 0, done.stderr
    good = ck / "checkpoint_stage1.npz"
    assert good.is_file(), sorted(p.name for p in ck.iterdir())
    blob = good.read_bytes()
    (root / "truncated.npz").write_bytes(blob[: len(blob) // 2])
    with np.load(good, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays["meta_json"].tobytes())
    tampered = dict(arrays, meta_json=np.frombuffer(json.dumps({**meta, "format": "evil-9"}).encode(), np.uint8))
    np.savez(root / "other_version.npz", **tampered)
    wrong_shape = dict(arrays, param_rotation=np.zeros((1, 7)))
    np.savez(root / "wrong_shape.npz", **wrong_shape)
    with (root / "pickled.npz").open("wb") as f:  # an object array: loading it would need pickle
        np.savez(f, **dict(arrays, param_shape=np.array([{"x": 1}], dtype=object)))
    two = dict(arrays, meta_json=np.frombuffer(json.dumps({**meta, "names": ["a", "b"]}).encode(), np.uint8))
    for k in [k for k in arrays if k.startswith("param_")]:
        two[k] = np.concatenate([arrays[k], arrays[k]])
    np.savez(root / "other_batch.npz", **two)
    return {"root": root, "face": face, "config": ds.config, "model": ds.model, "landmarks": ds.landmarks,
            "images": ds.images, "modes": modes}


@dataclass(frozen=True)
class Case:
    """One bad (or awkward) input: the argument list, the exit code and a substring of the error line."""

    name: str
    args: Callable[[dict[str, Path]], list[str]]
    code: int
    message: str
    outputs: list[str] = field(default_factory=list)  # files that must exist when code == 0
    min_psnr: float = 0.0  # when code == 0: every image's PSNR (dB) at least this (upright, right colours)


def _fit(d: dict[str, Path], image: Path | str, *extra: str) -> list[str]:
    return ["fit", str(image), "-o", str(d["out"]), "--config", str(d["config"]), *extra]


CASES = [
    Case("missing path", lambda d: _fit(d, d["root"] / "nope.png"), 3, "nope.png does not exist"),
    Case("random bytes named .png", lambda d: _fit(d, d["root"] / "bad" / "random.png"), 3, "is not an image file"),
    Case("truncated PNG", lambda d: _fit(d, d["root"] / "bad" / "truncated.png"), 3, "is corrupt or truncated"),
    Case("folder with only a non-image", lambda d: _fit(d, d["root"] / "text_only"), 3, "holds no images"),
    Case("empty folder", lambda d: _fit(d, d["root"] / "empty"), 3, "holds no images"),
    Case("output under a regular file", lambda d: _fit(d, d["face"]) + ["-o", str(d["root"] / "a_file" / "out")], 2,
         "a_file is a file"),
    Case("unknown renderer", lambda d: _fit(d, d["face"], "--renderer", "nope"), 2, "renderer 'nope' is not installed"),
    Case("unknown detector", lambda d: _fit(d, d["face"], "--landmarks", "nope"), 2, "detector 'nope' is not installed"),
    Case("unknown model", lambda d: _fit(d, d["face"], "--model", "nope"), 2, "model 'nope' is not installed"),
    Case("config: unknown key", lambda d: _fit(d, d["face"]) + ["--config", str(d["root"] / "unknown_key.toml")], 2,
         "iterationz"),
    Case("config: wrong type", lambda d: _fit(d, d["face"]) + ["--config", str(d["root"] / "wrong_type.toml")], 2,
         "stage2.iterations"),
    Case("config: out of range", lambda d: _fit(d, d["face"]) + ["--config", str(d["root"] / "out_of_range.toml")], 2,
         "light.bands"),
    Case("config: not TOML", lambda d: _fit(d, d["face"]) + ["--config", str(d["root"] / "not_toml.toml")], 2,
         "not_toml.toml"),
    Case("config: missing file", lambda d: _fit(d, d["face"]) + ["--config", str(d["root"] / "missing.toml")], 2,
         "missing.toml does not exist"),
    Case("model files missing", lambda d: _fit(d, d["face"], "--model-path", str(d["root"] / "empty_model")), 3,
         "empty_model"),
    Case("model files corrupt", lambda d: _fit(d, d["face"], "--model-path", str(d["root"] / "corrupt_model")), 3,
         "corrupt_model"),
    Case("model files of the wrong layout",
         lambda d: _fit(d, d["face"], "--model-path", str(d["root"] / "wrong_layout_model")), 3, "shape/model/pcaVariance"),
    Case("landmark file missing", lambda d: _fit(d, d["face"], "--landmarks-file", str(d["root"] / "none.json")), 3,
         "none.json"),
    Case("checkpoint missing", lambda d: _fit(d, d["face"], "--resume", str(d["root"] / "none.npz")), 3,
         "none.npz does not exist"),
    Case("checkpoint truncated", lambda d: _fit(d, d["face"], "--resume", str(d["root"] / "truncated.npz")), 3,
         "truncated or not a NextFace checkpoint"),
    Case("checkpoint of another version", lambda d: _fit(d, d["face"], "--resume", str(d["root"] / "other_version.npz")),
         3, "has format 'evil-9'"),
    Case("checkpoint tampered: wrong shape", lambda d: _fit(d, d["face"], "--resume", str(d["root"] / "wrong_shape.npz")),
         3, "rotation"),
    Case("checkpoint tampered: object array (pickle)",
         lambda d: _fit(d, d["face"], "--resume", str(d["root"] / "pickled.npz")), 3, "pickled.npz"),
    Case("checkpoint of another batch", lambda d: _fit(d, d["face"], "--resume", str(d["root"] / "other_batch.npz")), 3,
         "2 images"),
    Case("tiny image (< 64 px)", lambda d: _fit(d, d["root"] / "tiny.png"), 3, "tiny.png is 40×48 pixels, too small"),
    Case("huge image (> 8000 px)", lambda d: _fit(d, d["root"] / "huge.png"), 3, "huge.png is 8100×80 pixels, larger than 8000"),
    Case("bad --skip-stage", lambda d: _fit(d, d["face"], "--skip-stage", "7"), 2, "--skip-stage 7 is not a stage"),
    Case("no face in the image", lambda d: _fit(d, d["face"], "--landmarks-file", str(d["root"] / "no_face.json")), 3,
         "no face found in face000"),
    Case("grayscale, RGBA, 16-bit PNG, CMYK and EXIF-rotated JPEG fit",
         lambda d: _fit(d, d["modes"], "--landmarks-file", str(d["modes"] / "landmarks.json")), 0, "",
         outputs=[f"{n}/mesh.obj" for n in ("cmyk", "exif", "gray", "rgba", "sixteen")] + ["summary.json"], min_psnr=18.0),
]


@pytest.fixture(scope="module")
def outcomes(data: dict[str, Path]) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Every row run once, three CLI processes at a time (each one mostly starts Python):
    case name → (its output folder, the finished process)."""
    def run(case: Case) -> tuple[Path, subprocess.CompletedProcess[str]]:
        out = data["root"] / "outputs" / case.name.replace(" ", "_").replace(":", "").replace(",", "")
        return out, nextface(case.args({**data, "out": out}), data["root"] / "cache")

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip([c.name for c in CASES], pool.map(run, CASES)))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_line_and_its_exit_code(case: Case, outcomes: dict) -> None:
    out, result = outcomes[case.name]
    d = {"out": out}
    assert result.returncode == case.code, result.stderr
    assert "Traceback" not in result.stderr
    if case.code == 0:
        assert all((d["out"] / f).is_file() for f in case.outputs), result.stderr
        psnr = {row["name"]: row["psnr_db"] for row in json.loads((d["out"] / "summary.json").read_text())["images"]}
        assert min(psnr.values()) >= case.min_psnr, psnr
        return
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and case.message in errors[0], result.stderr
    assert any(line.startswith("fix: ") for line in result.stderr.splitlines()), result.stderr
    assert not d["out"].exists() or not any(d["out"].rglob("*")), sorted(d["out"].rglob("*"))


# -- batches: one unreadable image loses none of the others --------------------------------


@pytest.fixture(scope="module")
def batch(data: dict[str, Path]) -> Path:
    """The three synthetic faces and one file of random bytes named broken.png."""
    folder = data["root"] / "batch"
    folder.mkdir()
    for f in data["images"].glob("face*.png"):
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    return folder


def test_batch_continues_past_a_bad_image_and_names_it(data: dict[str, Path], batch: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = nextface(["fit", str(batch), "-o", str(out), "--config", str(data["config"])], data["root"] / "cache")
    assert result.returncode == 3, result.stderr
    assert "error: 1 of 4 images failed: broken.png:" in result.stderr and "Traceback" not in result.stderr
    assert "the other 3 results are in" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [row["name"] for row in summary["images"]] == ["face000", "face001", "face002"]
    assert all((out / f"face00{i}" / "mesh.obj").is_file() for i in range(3)) and not (out / "broken").exists()


def test_batch_fits_the_others_when_one_photo_has_no_face(data: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("face000", "face001"):
        (folder / f"{name}.png").write_bytes((data["images"] / f"{name}.png").read_bytes())
    out = tmp_path / "out"
    result = nextface(["fit", str(folder), "-o", str(out), "--config", str(data["config"]),
                       "--landmarks-file", str(data["root"] / "no_face.json")], data["root"] / "cache")
    assert result.returncode == 3, result.stderr
    assert "error: 1 of 2 images failed: face000: no face found" in result.stderr
    assert [row["name"] for row in json.loads((out / "summary.json").read_text())["images"]] == ["face001"]


def test_fail_fast_stops_before_writing_anything(data: dict[str, Path], batch: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = nextface(["fit", str(batch), "-o", str(out), "--config", str(data["config"]), "--fail-fast"], data["root"] / "cache")
    assert result.returncode == 3, result.stderr
    assert "broken.png" in result.stderr.splitlines()[-2] and "Traceback" not in result.stderr
    assert not out.exists()


# -- numerics: NaN/Inf in a loss or gradient (Python API) --------------------------------


class NanProbe:
    """A test loss term, active in stage 2 only: 0 with a zero gradient, except on the calls
    listed in ``bad`` where its value is NaN (odd calls) or its gradient is NaN (even calls)."""

    name = "nan_probe"

    def __init__(self, bad: set[int]) -> None:
        self.bad, self.calls = bad, 0

    def weight(self, config, stage: int) -> float:
        return 1.0 if stage == 2 else 0.0

    def __call__(self, ctx) -> torch.Tensor:
        self.calls += 1
        zero = (ctx.params.shape * 0.0).sum()
        if self.calls not in self.bad:
            return zero
        return zero + float("nan") if self.calls % 2 else zero.sqrt()  # d sqrt(x)/dx at 0 is inf; × 0 → NaN


def _fitter(data: dict[str, Path], probe: NanProbe, stage2: int):
    from nextface_core import hookimpl
    from nextface_core.fitting import Fitter
    from nextface_core.plugins import PluginRegistry
    from nextface_core.synthetic import synthetic_model
    from nextface_core.testing import fresh_registry

    class Plugin:
        @hookimpl
        def nextface_register_losses(self, register) -> None:
            register("nan_probe", lambda config: probe, description="test term injecting NaN")

    config = load_config(data["config"], {"stage2.iterations": stage2, "stage3.iterations": 0})
    # a constant landmark weight, so that the stage's losses compare from its first iteration to its last
    config = config.with_overrides({"weights.landmarks_stage2_final": config.weights.landmarks_stage2})
    renderer = PluginRegistry().create("renderer", "vertex", config)
    return Fitter(config, registry=fresh_registry(("nan_probe", Plugin())), model=synthetic_model("small"), renderer=renderer)


def test_nan_steps_are_rolled_back_and_the_fit_recovers(data: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    probe = NanProbe({3, 6})
    image = np.asarray(Image.open(data["face"]).convert("RGB"))
    with caplog.at_level("WARNING"):
        result = _fitter(data, probe, stage2=12).fit([image], ["face000"])
    stage2 = result.stages[1]
    assert len(stage2.losses) == 12 - 2  # the two bad iterations were rolled back
    assert sum("step rolled back, learning rate halved" in r.message for r in caplog.records) == 2
    assert all(bool(torch.isfinite(t).all()) for t in result.params.tensors().values())
    assert stage2.losses[-1] < stage2.losses[0]  # it still made progress


def test_a_stage_that_keeps_diverging_stops_with_the_last_good_checkpoint(data: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from nextface_core.fitting.stages.photometric import PhotometricStage
    from nextface_core.reliability import MAX_NUMERIC_FAILURES, FitStopped

    seen = {}  # stage 2's input: what stage 1 returned
    stage2 = PhotometricStage.run

    def spy(self, state, params):
        seen["params"] = params.detached()
        return stage2(self, state, params)

    monkeypatch.setattr(PhotometricStage, "run", spy)

    probe = NanProbe(set(range(4, 100)))
    image = np.asarray(Image.open(data["face"]).convert("RGB"))
    fitter = _fitter(data, probe, stage2=50)
    with pytest.raises(FitStopped) as info:
        fitter.fit([image], ["face000"])
    stop = info.value
    assert "stage 2 gave a NaN/Inf" in stop.message and stop.exit_code == 70
    assert probe.calls == 3 + MAX_NUMERIC_FAILURES + 1
    assert stop.checkpoint.completed_stage == 1
    for name, value in seen["params"].tensors().items():  # the checkpoint is the stage-1 result, untouched
        torch.testing.assert_close(stop.checkpoint.params.tensors()[name], value, rtol=0, atol=1e-9)


# -- interruption: SIGTERM/SIGINT during the fit, then --resume ----------------------------


@pytest.fixture(scope="module")
def long_config(data: dict[str, Path]) -> Path:
    """The quick config with 30 stage-2 iterations (time to send a signal)."""
    config = data["root"] / "long.toml"
    config.write_text(data["config"].read_text().replace("[stage2]\niterations = 6", "[stage2]\niterations = 30"))
    return config


def _interrupted(data: dict[str, Path], config: Path, out: Path, signum: int) -> tuple[list[str], int, str]:
    """Start ``nextface fit``, send ``signum`` as stage 2 starts; (arguments, exit code, stderr)."""
    args = ["fit", str(data["face"]), "-o", str(out), "--config", str(config)]
    env = {**os.environ, "NEXTFACE_CACHE_DIR": str(data["root"] / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", CODE, *args], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("stage 2: 1/"):
            proc.send_signal(signum)
            break
    rest = proc.communicate(timeout=120)[1]
    return args, proc.returncode, "".join(lines) + rest


def test_sigint_during_stage_2_exits_130_with_a_checkpoint(data: dict[str, Path], long_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _, code, stderr = _interrupted(data, long_config, out, signal.SIGINT)
    assert code == 130, stderr
    assert "error: interrupted by SIGINT during stage 2; last good checkpoint saved: " in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint_stage1.npz"]


def test_sigterm_during_stage_2_then_resume_matches_an_uninterrupted_run(
    data: dict[str, Path], long_config: Path, tmp_path: Path
) -> None:
    """Resumed and uninterrupted runs each run stage 2 in a fresh process; they agree to 1e-5
    like the same command twice (tests/test_reproducible.py). Before the closed-form pose start
    was solved in float64 they differed by up to 0.1 sd: LAPACK's float32 varies in the last bits."""
    out = tmp_path / "out"
    reference = subprocess.Popen(  # the same run uninterrupted, beside the interrupted one
        [sys.executable, "-c", CODE, "fit", str(data["face"]), "-o", str(tmp_path / "ref"), "--config", str(long_config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NEXTFACE_CACHE_DIR": str(data["root"] / "cache")},
    )
    args, code, stderr = _interrupted(data, long_config, out, signal.SIGTERM)
    assert code == 143, stderr
    checkpoint = out / "checkpoint_stage1.npz"
    assert f"interrupted by SIGTERM during stage 2; last good checkpoint saved: {checkpoint}" in stderr
    assert f"fix: rerun the same command with --resume {checkpoint}" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint_stage1.npz"]
    resumed = nextface(args + ["--resume", str(checkpoint)], data["root"] / "cache")
    assert resumed.returncode == 0, resumed.stderr
    assert "stage 1:" not in resumed.stderr  # stage 1 was not run again
    assert reference.wait(timeout=120) == 0, reference.stderr.read()
    with np.load(out / "face000" / "params.npz", allow_pickle=False) as got, \
            np.load(tmp_path / "ref" / "face000" / "params.npz", allow_pickle=False) as want:
        assert set(got.files) == set(want.files)
        for name in want.files:
            np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5, err_msg=name)


# -- the same bad inputs through the Python API: typed errors, no other exception ------------


def _api_fit(data: dict[str, Path], start: str | None = None, images: int = 1):
    from nextface_core.fitting import Checkpoint, Fitter

    image = np.asarray(Image.open(data["face"]).convert("RGB"))
    checkpoint = Checkpoint.load(data["root"] / start) if start else None
    return Fitter(load_config(data["config"])).fit([image] * images, [f"face00{i}" for i in range(images)], start=checkpoint)


API_CASES = [
    ("load_image: missing", lambda d: load_image(d["root"] / "nope.png"),
     "InputError", "does not exist"),
    ("load_image: random bytes", lambda d: load_image(d["root"] / "bad" / "random.png"),
     "InputError", "not an image file"),
    ("load_image: truncated", lambda d: load_image(d["root"] / "bad" / "truncated.png"),
     "InputError", "corrupt or truncated"),
    ("load_config: unknown key", lambda d: load_config(d["root"] / "unknown_key.toml"),
     "ConfigError", "iterationz"),
    ("load_config: out of range", lambda d: load_config(d["root"] / "out_of_range.toml"),
     "ConfigError", "light.bands"),
    ("Checkpoint.load: truncated", lambda d: _api_fit(d, "truncated.npz"), "InputError", "truncated or not a NextFace checkpoint"),
    ("Checkpoint.load: object array", lambda d: _api_fit(d, "pickled.npz"), "InputError", "pickled.npz"),
    ("Fitter.fit: checkpoint of another batch", lambda d: _api_fit(d, "other_batch.npz"), "InputError", "holds 2 images"),
    ("Fitter.fit: checkpoint with a wrong shape", lambda d: _api_fit(d, "wrong_shape.npz"), "InputError", "rotation has shape (1, 7)"),
    ("Fitter.fit: no images", lambda d: _api_fit(d, images=0), "InputError", "no images to fit"),
]


@pytest.mark.parametrize(("name", "call", "error", "message"), API_CASES, ids=[c[0] for c in API_CASES])
def test_python_api_raises_typed_errors(data: dict[str, Path], name: str, call, error: str, message: str) -> None:
    from nextface_core.errors import NextFaceError

    with pytest.raises(NextFaceError) as info:
        call(data)
    assert type(info.value).__name__ == error and message in info.value.message and info.value.hint


# -- plugins that break: on import, while starting, while running ---------------------------

BROKEN_PLUGINS = {
    "nf_broken_import": "raise RuntimeError('backend library missing')\n",
    "nf_broken_start": (
        "from nextface_core import hookimpl\n"
        "def _make(config):\n    raise OSError('no GPU driver')\n"
        "@hookimpl\ndef nextface_register_renderers(register):\n    register('nf_broken_start', _make)\n"
    ),
    "nf_broken_run": (
        "from nextface_core import hookimpl\n"
        "class R:\n    name = 'nf_broken_run'\n    def render(self, inputs, settings):\n        raise ValueError('shader exploded')\n"
        "@hookimpl\ndef nextface_register_renderers(register):\n    register('nf_broken_run', lambda c: R())\n"
    ),
}


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three installed-looking distributions (real entry points) whose renderer breaks."""
    site = tmp_path_factory.mktemp("site")
    for module, source in BROKEN_PLUGINS.items():
        (site / f"{module}.py").write_text(source)
        info = site / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[nextface]\n{module} = {module}\n")
    return site


@pytest.mark.parametrize(
    ("renderer", "code", "message"),
    [
        ("nf_broken_import", 4, "renderer 'nf_broken_import' is installed but its plugin 'nf_broken_import' failed to load"),
        ("nf_broken_start", 4, "failed to start: OSError: no GPU driver"),
        ("nf_broken_run", 70, "ValueError: shader exploded"),
    ],
)
def test_a_broken_plugin_is_one_line_naming_it(data, broken_site: Path, tmp_path: Path, renderer: str, code: int,
                                               message: str) -> None:
    out = tmp_path / "out"
    env_path = os.pathsep.join([str(broken_site), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": env_path, "NEXTFACE_CACHE_DIR": str(data["root"] / "cache")}
    args = _fit({**data, "out": out}, data["face"], "--renderer", renderer)
    result = subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith(("error: ", "internal error: "))]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists() or not any(out.rglob("*"))
