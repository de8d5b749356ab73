"""``nextface model info``: what a morphable model contains and how fast it loads.

Works for any installed model plugin (default: the config's ``run.model``): the model is
built through the registry (twice, to time a first and a second load; ``--cold`` points
NextFace's cache folder at an empty temporary one for the first), then its counts, units
and axes (checked on the mean shape), UV quality and landmark schemas are measured here.

``nextface model calibrate-landmarks``: the dense-landmark calibration of a model
(:mod:`nextface_core.calibration`), written to the cache or beside the model files.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Optional

import typer

from .app import model_app


@model_app.command("info")
def info(
    model: Optional[str] = typer.Option(None, "--model", help="Model name (an installed model plugin; default: the config's run.model)."),
    path: Optional[Path] = typer.Option(None, "--path", help="Model folder (config model.path)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="TOML config file."),
    cold: bool = typer.Option(False, "--cold", help="Time a cold first load (empty temporary cache)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Vertex, triangle and component counts, units and axes, UV quality, landmark schemas, load times."""
    from nextface_core.cache import empty_cache
    from nextface_core.config import load_config
    from nextface_core.dense_landmarks import prepare_model
    from nextface_core.mesh import check_frame
    from nextface_core.plugins import PluginRegistry
    from nextface_core.uvmap import uv_quality

    overrides = {"model.path": str(path)} if path is not None else {}
    config = load_config(config_file, {**overrides, "run.device": "cpu", "run.model": model})
    model = config.run.model
    registry = PluginRegistry()
    with empty_cache() if cold else contextlib.nullcontext():
        start = time.perf_counter()
        registry.create("model", model, config)
        first = time.perf_counter() - start
        start = time.perf_counter()
        loaded = registry.create("model", model, config)
        second = time.perf_counter() - start
    loaded = prepare_model(loaded, config)  # a stored dense calibration shows as mediapipe478
    mean = loaded.shape_mean.double()
    frame = check_frame(mean.numpy(), loaded.faces.numpy(), loaded.name)
    quality = uv_quality(loaded.uv, mean, loaded.faces, loaded.symmetry)
    report = {
        "model": model,
        "name": loaded.name,
        "vertices": loaded.n_vertices,
        "triangles": loaded.n_faces,
        "components": {"shape": loaded.n_shape, "expression": loaded.n_expression, "albedo": loaded.n_albedo},
        "units": loaded.units,
        "units_found": frame.units,
        "extent_mm": [round(e, 2) for e in frame.extent_mm],
        "axes": frame.axes,
        "uv": quality.as_dict(),
        "landmark_schemas": {
            schema: {"fixed": int(a.landmark_index.numel()), "contour": len(a.contour)}
            for schema, a in loaded.landmarks.items()
        },
        "symmetry_map": loaded.symmetry is not None,
        "load_seconds": {"first": round(first, 3), "second": round(second, 3), "first_is_cold": cold},
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    comps = report["components"]
    uv = report["uv"]
    schemas = ", ".join(
        f"{s} ({v['fixed']} fixed + {v['contour']} dynamic contour)" for s, v in report["landmark_schemas"].items()
    )
    typer.echo(f"model      {model} ({loaded.name})")
    typer.echo(f"mesh       {report['vertices']} vertices, {report['triangles']} triangles")
    typer.echo(f"components shape {comps['shape']}, expression {comps['expression']}, albedo {comps['albedo']}")
    typer.echo(f"units      {loaded.units} (checked: extent {' x '.join(f'{e:.1f}' for e in frame.extent_mm)} mm)")
    typer.echo(f"axes       {frame.axes} (checked on the mean shape)")
    typer.echo(
        f"uv         {uv['flipped']} flipped triangles, {uv['boundary_crossings']} boundary crossings, area distortion {uv['area_distortion']:.3f} "
        f"(ratio p5 {uv['area_ratio_p5']:.2f}, p95 {uv['area_ratio_p95']:.2f}), L2 stretch {uv['l2_stretch']:.2f}, "
        f"symmetry error {uv['symmetry_error']:.2g}"
    )
    typer.echo(f"landmarks  {schemas or 'none'}")
    kind = "cold" if cold else "first"
    typer.echo(f"load       {kind} {first:.2f} s, warm {second:.2f} s")


@model_app.command("calibrate-landmarks")
def calibrate_landmarks(
    model: Optional[str] = typer.Option(None, "--model", help="Model name (an installed model plugin; default: the config's run.model)."),
    path: Optional[Path] = typer.Option(None, "--path", help="Model folder (config model.path)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="TOML config file."),
    photo: Optional[Path] = typer.Option(None, "--photo", help="Frontal portrait whose colours texture the renders (default: scikit-image's astronaut)."),
    views: int = typer.Option(48, "--views", min=8, help="Renders to measure on (yaw ±45°, pitch ±20°, random identities and expressions)."),
    size: int = typer.Option(320, "--size", min=128, max=2048, help="Render size in pixels."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the identities, expressions and rolls of the renders."),
    beside: bool = typer.Option(False, "--beside", help="Write the table into the model folder (--path) instead of the cache."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Measure where MediaPipe's 478 landmarks lie on the model's surface and store it for the fit."""
    from nextface_core import calibration, dense_landmarks
    from nextface_core.errors import UsageError
    from nextface_core.images import load_image
    from nextface_core.plugins import PluginRegistry

    from .options import command_config, require_plugins

    config = command_config(config_file, model=model, model_path=path, device="cpu")
    require_plugins(config)
    folder = dense_landmarks.model_folder(config)
    if beside and folder is None:
        raise UsageError("--beside needs the model folder", "pass --path DIR (the folder of the model files)")
    image = load_image(photo) if photo is not None else calibration.default_photo()
    registry = PluginRegistry()
    loaded = registry.create("model", config.run.model, config)
    start = time.perf_counter()
    texture = calibration.texture_from_photo(loaded, image, config, registry)
    detector = registry.create("detector", config.run.landmarks, config)
    renderer = registry.create("renderer", config.run.renderer, config)
    try:
        run = calibration.calibrate(loaded, renderer, detector, texture, views=views, image_size=size, seed=seed)
    finally:
        close = getattr(detector, "close", None)
        if callable(close):
            close()
    target = folder / dense_landmarks.FILE_NAME if beside else dense_landmarks.cache_path(loaded)
    dense_landmarks.save_calibration(run.calibration, target)
    spread = run.calibration.spread_mm
    report = {
        "model": config.run.model,
        "name": loaded.name,
        "renders": run.renders,
        "faces_detected": run.detected,
        "fixed": run.fixed,
        "contour": run.contour,
        "left_out": run.left_out,
        "spread_mm_median": round(float(spread.median()), 3) if spread.numel() else None,
        "spread_mm_p90": round(float(spread.quantile(0.9)), 3) if spread.numel() else None,
        "seconds": round(time.perf_counter() - start, 1),
        "written": str(target),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"model      {config.run.model} ({loaded.name})")
    typer.echo(f"renders    {run.renders} ({run.detected} with a face found)")
    typer.echo(f"landmarks  {run.fixed} surface points, {run.contour} contour, {run.left_out} left out (of {run.fixed + run.contour + run.left_out})")
    if spread.numel():
        typer.echo(f"spread     median {report['spread_mm_median']} mm, 90th percentile {report['spread_mm_p90']} mm")
    typer.echo(f"written    {target} ({report['seconds']} s)")
