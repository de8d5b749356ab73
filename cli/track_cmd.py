"""``nextface track``: pose, expression and light per video frame with a fixed identity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .app import app
from .options import command_config, require_plugins
from .progress import progress


@app.command()
def track(
    video: Path = typer.Argument(..., help="A video file (decoded with the ffmpeg of imageio-ffmpeg)."),
    out: Path = typer.Option(Path("track-out"), "-o", "--out", help="Output folder."),
    identity: Optional[Path] = typer.Option(None, "--identity", help="A 'nextface fit' result folder to take the identity from."),
    keyframes: Optional[int] = typer.Option(None, "--keyframes", help="Frames of the shared-identity fit (without --identity)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Longer side of the tracked frames, pixels."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config (its track table and the fit settings)."),
    renderer: Optional[str] = typer.Option(None, "--renderer", help="Renderer name (nextface plugins list)."),
    landmarks: Optional[str] = typer.Option(None, "--landmarks", help="Landmark detector name (mediapipe runs in tracking mode)."),
    landmarks_file: Optional[Path] = typer.Option(None, "--landmarks-file", help="Landmark file for --landmarks file (frames named frame000000, ...)."),
    model: Optional[str] = typer.Option(None, "--model", help="Morphable model name."),
    model_path: Optional[Path] = typer.Option(None, "--model-path", help="Folder holding the model files."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    mesh_units: Optional[str] = typer.Option(None, "--mesh-units", help="Units of track.glb and the --obj meshes: m (default) or mm."),
    obj: bool = typer.Option(False, "--obj", help="Also write one OBJ mesh per frame (OUT/obj/)."),
    no_overlay: bool = typer.Option(False, "--no-overlay", help="Do not write overlay.mp4."),
    as_json: bool = typer.Option(False, "--json", help="Print the track's summary as JSON."),
) -> None:
    """Track head pose, expression and light through a video, the identity fixed."""
    from nextface_core.tracking import Identity, probe, read_frames, save_track, track_frames

    cfg = command_config(
        config, renderer=renderer, landmarks=landmarks, model=model, device=device, keyframes=keyframes,
        resolution=resolution, model_path=model_path, mesh_units=mesh_units, landmarks_file=landmarks_file,
    )
    require_plugins(cfg)
    info = probe(video)
    known = Identity.load(identity) if identity is not None else None
    frames = lambda: read_frames(video)  # noqa: E731  (each pass decodes the video again)

    with progress() as update:
        result = track_frames(frames, cfg, identity=known, fps=info.fps, progress=update)
    summary = save_track(result, frames, out, video=str(video), overlay=not no_overlay, obj=obj)
    if as_json:
        typer.echo(json.dumps({"out": str(out), "summary_file": str(summary), **json.loads(summary.read_text())}, indent=2))
        return
    counts = result.counts()
    typer.echo(
        f"{result.frame_count} frames: {counts['tracked']} tracked, {counts['interpolated']} interpolated, "
        f"{counts['no face']} without a face; {result.tracking_frames_per_second():.1f} frames/s tracking"
    )
    typer.echo(f"results in {out} (summary: {summary})")
