"""``nextface fit-dataset``: fit every photo of a dataset, one task per image (or identity
group), on Ray (a local runtime by default) or in local processes (``--no-ray``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from nextface_core.errors import InputError, UsageError

from .app import app
from .options import check_stages, command_config, require_plugins
from .progress import image_progress, progress


@app.command("fit-dataset")
def fit_dataset_cmd(
    input: str = typer.Argument(..., help="A folder of images (sub-folders = identity groups), or a .jsonl/.csv/.parquet manifest; local or an fsspec URL."),
    out: str = typer.Option(..., "-o", "--out", help="Output folder or fsspec URL (file://, s3://, gs:// ...)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Concurrent tasks (default: CPUs, or the cluster's GPUs on CUDA)."),
    address: Optional[str] = typer.Option(None, "--address", help="Join this Ray cluster (e.g. auto or HOST:6379) instead of starting a local runtime."),
    no_ray: bool = typer.Option(False, "--no-ray", help="Run the tasks in local processes instead of Ray."),
    shared_identity: bool = typer.Option(False, "--shared-identity", help="One task per group (sub-folder, or --group-by column): one identity per group."),
    group_by: Optional[str] = typer.Option(None, "--group-by", help="Manifest column naming each image's group (default: 'group')."),
    retries: int = typer.Option(2, "--retries", help="Extra attempts for a task whose worker died or that failed unexpectedly."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads per task (default: cores / workers)."),
    manifest_format: str = typer.Option("jsonl", "--manifest-format", help="jsonl, or parquet (needs pyarrow)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config (defaults: nextface_core/default_config.toml)."),
    renderer: Optional[str] = typer.Option(None, "--renderer", help="Renderer name (nextface plugins list)."),
    landmarks: Optional[str] = typer.Option(None, "--landmarks", help="Landmark detector name."),
    landmarks_file: Optional[Path] = typer.Option(None, "--landmarks-file", help="Landmark file for --landmarks file (keys: image key or file name)."),
    model: Optional[str] = typer.Option(None, "--model", help="Morphable model name."),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="Folder holding the model files (reachable by every worker)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (CUDA: each task asks Ray for a GPU)."),
    mesh_units: Optional[str] = typer.Option(None, "--mesh-units", help="Units of mesh.obj, mesh.glb and camera.json: m (default) or mm."),
    skip_stage: List[int] = typer.Option([], "--skip-stage", help="Stage number not to run (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the final report as JSON."),
) -> None:
    """Fit a whole dataset; rerun the same command to finish an interrupted run."""
    from nextface_core.dataset import fit_dataset

    cfg = command_config(
        config, renderer=renderer, landmarks=landmarks, model=model, device=device, model_path=model_path, mesh_units=mesh_units,
        landmarks_file=landmarks_file,
    )
    check_stages(skip_stage)
    require_plugins(cfg)
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers} is not a worker count", "pass 1 or more")
    with progress() as update:
        report = fit_dataset(
            input, out, cfg, workers=workers, address=address, use_ray=not no_ray, shared_identity=shared_identity,
            group_by=group_by, retries=retries, skip_stages=skip_stage, manifest_format=manifest_format,
            threads=threads, progress=image_progress(update),
        )
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else "\n".join(report.lines()))
    if report.failed:
        raise InputError(
            f"{report.failed} of {report.total} images failed (reasons above and in {out}/manifest.{manifest_format})",
            "fix those images and rerun the same command: finished images are skipped",
        )
