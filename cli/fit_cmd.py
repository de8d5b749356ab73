"""``nextface fit``, ``nextface demo`` and ``nextface replay``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from nextface_core.errors import InputError, OutputError, UsageError

from .app import app
from .options import check_stages, command_config, require_plugins
from .progress import progress, stage_progress


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


def _readable_images(files: list[Path], fail_fast: bool) -> tuple[list[Path], list[str], list[tuple[Path, str]]]:
    """Check that every image can be read (decoded once, then dropped: a folder of any size
    costs the memory of one photo here); an unreadable one is reported and left out (raised
    with ``fail_fast`` or when it is the only image). Returns the readable files, their names
    and the failures."""
    from nextface_core.fitting.inputs import check_image_size
    from nextface_core.images import load_image

    stems = [f.stem for f in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise UsageError(f"several input images are named {twice[0]} (their outputs would overwrite each other)", "rename them")
    readable, names, failed = [], [], []
    for f in files:
        try:
            check_image_size(load_image(f), f.name)
            readable.append(f)
            names.append(f.stem)
        except InputError as exc:
            if fail_fast or len(files) == 1:
                raise
            failed.append((f, exc.message))
            typer.echo(f"skipping {f.name}: {exc.message}", err=True)
    if not readable:
        raise InputError(f"none of the {len(files)} images could be read (first: {failed[0][1]})", "check the images")
    return readable, names, failed


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
    mesh_units: Optional[str] = typer.Option(None, "--mesh-units", help="Units of mesh.obj, mesh.glb and camera.json: m (default) or mm."),
    shared_identity: bool = typer.Option(False, "--shared-identity", help="All images show one person: one shape and one set of maps."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Resume from a checkpoint_stageN.npz."),
    skip_stage: List[int] = typer.Option([], "--skip-stage", help="Stage number not to run (repeatable)."),
    skip_no_face: bool = typer.Option(False, "--skip-no-face", help="Skip images without a detectable face."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first unreadable image, before writing anything."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary (metrics per image, stages, failures) as JSON."),
) -> None:
    """Fit the morphable model to one image, a folder, or several photos of one person.

    In a folder, unreadable images are skipped and the others fitted; the run then exits
    with an error naming them (``--fail-fast`` stops at the first one instead). SIGINT or
    SIGTERM during the fit saves a resumable checkpoint in the output folder.
    """
    from nextface_core.fitting import Checkpoint, Fitter
    from nextface_core.fitting.batches import fit_files
    from nextface_core.images import load_image
    from nextface_core.reliability import FitStopped, check_output_folder, signals_interrupt

    cfg = command_config(
        config, renderer=renderer, landmarks=landmarks, model=model, device=device, model_path=model_path, mesh_units=mesh_units,
        landmarks_file=landmarks_file, skip_no_face=skip_no_face or None,
    )
    check_stages(skip_stage)
    require_plugins(cfg)
    check_output_folder(out)
    inputs = _collect_inputs(input)
    files, names, failed = _readable_images(inputs, fail_fast)
    start = Checkpoint.load(resume) if resume else None
    if len(files) > 1 and not fail_fast and not cfg.run.skip_no_face:
        # in a batch, a photo without a face costs only itself: fit the others, report it at the end
        cfg = cfg.with_overrides({"run.skip_no_face": True})
    fitter = Fitter(cfg)
    try:
        with signals_interrupt(), progress() as update:
            run = fit_files(fitter, names, lambda i: load_image(files[i]), out, cfg.run.batch_size,
                            shared_identity=shared_identity, start=start, skip_stages=skip_stage,
                            progress=stage_progress(update))
    except OutputError as exc:
        saved = sorted(out.glob("checkpoint_*stage*.npz"))
        if saved:
            exc.hint += f"; the fit itself is saved: rerun the same command with --resume {saved[-1]}"
        raise
    except FitStopped as stop:
        path = out / f"checkpoint_stage{stop.checkpoint.completed_stage}.npz"
        stop.checkpoint.save(path)
        raise FitStopped(
            f"{stop.message}; last good checkpoint saved: {path}",
            f"rerun the same command with --resume {path}",
            stop.checkpoint,
            stop.exit_code,
        ) from None
    failed += [(Path(n), why) for n, why in run.skipped if why == "no face found" and not skip_no_face]
    summary = run.summary
    report = json.loads(summary.read_text())  # the metrics save_outputs computed
    if as_json:
        failures = [{"image": str(f), "error": why} for f, why in failed]
        typer.echo(json.dumps({"out": str(out), "summary_file": str(summary), **report, "failed": failures}, indent=2))
    else:
        for row in report["images"]:
            iod, ibug = row["landmark_error_iod_percent"], row.get("ibug68_error_iod_percent")
            typer.echo(
                f"{row['name']}: landmark error {row['landmark_error_px']:.2f} px"
                + (f" ({iod:.2f} % IOD)" if iod is not None else "")
                + (f", ibug-68 subset {ibug:.2f} % IOD" if ibug is not None and report.get("schema") != "ibug68" else "")
                + (f", PSNR {row['psnr_db']:.2f} dB" if row["psnr_db"] is not None else "")
            )
        typer.echo(f"results in {out} (summary: {summary})")
    if failed:
        raise InputError(
            f"{len(failed)} of {len(inputs)} images failed: " + "; ".join(f"{f.name}: {why}" for f, why in failed),
            f"fix or remove those images and rerun; the other {len(run.fitted)} results are in {out}",
        )


@app.command()
def demo(
    out: Path = typer.Option(Path("nextface-demo"), "-o", "--out", help="Output folder."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config overriding the demo's settings."),
    size: str = typer.Option("small", "--size", help="Synthetic model size: small or full."),
) -> None:
    """Fit a face rendered from the built-in synthetic model and print recovered-vs-true errors."""
    from nextface_core.demo import demo_config, run_demo

    require_plugins(demo_config(config), ("renderer",))
    with progress() as update:
        report = run_demo(out, config, size=size, progress=stage_progress(update))
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
