"""``nextface fit``, ``nextface demo`` and ``nextface replay``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from nextface_core.config import load_config
from nextface_core.errors import InputError, UsageError

from .main import app

_OVERRIDES = {
    "renderer": "run.renderer",
    "landmarks": "run.landmarks",
    "model": "run.model",
    "model_path": "model.path",
    "device": "run.device",
    "landmarks_file": "landmarks.file",
}


def _progress():
    """A rich progress bar per stage, driven by the fit's progress callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("stage {task.fields[stage]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4g}"),
        TimeRemainingColumn(),
        transient=False,
    )
    tasks: dict[int, int] = {}

    def update(stage: int, it: int, total: int, loss: float) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task("", total=total, stage=stage, loss=loss)
        if it == total or it % 10 == 0:
            bar.update(tasks[stage], completed=it, loss=loss)

    return bar, update


def _collect_inputs(path: Path) -> list[Path]:
    from nextface_core.images import list_images

    if not path.exists():
        raise InputError(f"input {path} does not exist", "pass an image file or a folder of images")
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise InputError(f"folder {path} holds no images", "add .png/.jpg images or pass an image file")
        return files
    return [path]


@app.command()
def fit(
    input: Path = typer.Argument(..., help="An image, or a folder of images (a batch)."),
    out: Path = typer.Option(Path("out"), "-o", "--out", help="Output folder."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config (defaults: nextface_core/default_config.toml)."),
    renderer: Optional[str] = typer.Option(None, "--renderer", help="Renderer name (nextface plugins list)."),
    landmarks: Optional[str] = typer.Option(None, "--landmarks", help="Landmark detector name."),
    landmarks_file: Optional[Path] = typer.Option(None, "--landmarks-file", help="Landmark file for --landmarks file."),
    model: Optional[str] = typer.Option(None, "--model", help="Morphable model name."),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="Folder holding the model files."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    shared_identity: bool = typer.Option(False, "--shared-identity", help="All images show one person: one shape and one set of maps."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Resume from a checkpoint_stageN.npz."),
    skip_stage: List[int] = typer.Option([], "--skip-stage", help="Stage number not to run (repeatable)."),
    skip_no_face: bool = typer.Option(False, "--skip-no-face", help="Skip images without a detectable face."),
) -> None:
    """Fit the morphable model to one image, a folder, or several photos of one person."""
    from nextface_core.fitting import Checkpoint, Fitter, save_result
    from nextface_core.images import load_image

    values = {
        "renderer": renderer, "landmarks": landmarks, "model": model, "device": device,
        "model_path": str(model_path) if model_path else None,
        "landmarks_file": str(landmarks_file) if landmarks_file else None,
    }
    overrides = {_OVERRIDES[k]: v for k, v in values.items() if v is not None}
    if skip_no_face:
        overrides["run.skip_no_face"] = True
    cfg = load_config(config, overrides)
    bad = [s for s in skip_stage if s not in (1, 2, 3)]
    if bad:
        raise UsageError(f"--skip-stage {bad[0]} is not a stage", "stages are 1, 2 and 3")
    files = _collect_inputs(input)
    images = [load_image(f) for f in files]
    names = [f.stem for f in files]
    start = Checkpoint.load(resume) if resume else None
    fitter = Fitter(cfg)
    bar, update = _progress()
    with bar:
        result = fitter.fit(images, names, shared_identity=shared_identity, start=start, skip_stages=skip_stage, progress=update)
    summary = save_result(result, out)
    for row in result.summary()["images"]:
        iod = row["landmark_error_iod_percent"]
        typer.echo(
            f"{row['name']}: landmark error {row['landmark_error_px']:.2f} px"
            + (f" ({iod:.2f} % IOD)" if iod is not None else "")
            + (f", PSNR {row['psnr_db']:.2f} dB" if row["psnr_db"] is not None else "")
        )
    typer.echo(f"results in {out} (summary: {summary})")


@app.command()
def demo(
    out: Path = typer.Option(Path("nextface-demo"), "-o", "--out", help="Output folder."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config overriding the demo's settings."),
    size: str = typer.Option("small", "--size", help="Synthetic model size: small or full."),
) -> None:
    """Fit a face rendered from the built-in synthetic model and print recovered-vs-true errors."""
    from nextface_core.demo import run_demo

    report = run_demo(out, config, size=size)
    for key, value in report.items():
        typer.echo(f"{key:>32}: {value}")
    typer.echo(f"results in {out}")


@app.command()
def replay(
    result: Path = typer.Argument(..., help="A per-image result folder written by 'nextface fit' (holds mesh.obj)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Animation file (.gif or .mp4); default RESULT/turntable.gif."),
    frames: int = typer.Option(36, "--frames", help="Frames in one turn."),
    renderer: Optional[str] = typer.Option(None, "--renderer", help="Renderer name."),
) -> None:
    """Render a turntable animation of a fit result."""
    from nextface_core.replay import turntable

    path = turntable(result, out, frames=frames, renderer=renderer)
    typer.echo(f"wrote {path}")
