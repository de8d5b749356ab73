"""``nextface landmarks``: detect landmarks and write them in the file detector's format.

The written file can be inspected or corrected by hand and fed back with
``--landmarks file --landmarks-file FILE`` (to this command or to ``nextface fit``).
With ``--fit`` the overlays also show the model's landmark points (a ``mediapipe478``
calibration's surface points where the model has one) as stage 1 of the fit projects them,
next to the detections.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch
import typer

from nextface_core.config import Config
from nextface_core.errors import InputError, UsageError
from nextface_core.images import list_images, load_image
from nextface_core.landmark_files import write_landmarks
from nextface_core.landmarks import LandmarkSet
from nextface_core.overlay import save_overlay
from nextface_core.plugins import PluginRegistry

from .app import app
from .options import command_config

if TYPE_CHECKING:
    from nextface_core.fitting import Fitter

#: images loaded and detected at a time, so a large folder does not fill the memory
CHUNK = 16
_SHOWN = 5  # image names listed in a message before "..."


def _names(paths: list[Path], names_shown: int = _SHOWN) -> str:
    shown = ", ".join(str(p) for p in paths[:names_shown])
    return shown + (f" and {len(paths) - names_shown} more" if len(paths) > names_shown else "")


def _save_fit_overlays(fitter: "Fitter", images: list[np.ndarray], names: list[str], sets: dict[str, LandmarkSet],
                       paths: list[Path]) -> set[str]:
    """Stage 1 of the fit on the images in which a face was found; each one's photo with the
    detections and the projected model points (:func:`~nextface_core.fitting.outputs.landmark_overlay`)
    is saved at its ``paths`` entry. Returns the names of the images drawn."""
    from nextface_core.fitting.outputs import landmark_overlay, save_png

    keep = torch.stack([s.found for s in sets.values()]).all(0).nonzero()[:, 0].tolist()
    if not keep:
        return set()
    result = fitter.fit([images[i] for i in keep], [names[i] for i in keep],
                        landmarks={schema: s.select(keep) for schema, s in sets.items()})
    for j, i in enumerate(keep):
        save_png(paths[i], landmark_overlay(result, j, images[i]))
    return {names[i] for i in keep}


def _landmark_fitter(config: Config) -> "Fitter":
    """The fit's stage 1 alone, for ``--fit`` overlays."""
    from nextface_core.fitting import Fitter

    return Fitter(config.with_overrides({"fit.stages": ["landmarks"]}))


def _overlay_path(overlay: Path, folder_input: bool, name: str) -> Path:
    return overlay / f"{Path(name).stem}_landmarks.png" if folder_input else overlay


@app.command()
def landmarks(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="An image file, or a folder of images (not recursive)."),
    output: Path = typer.Option(..., "-o", "--output", help="Landmark file to write: .json or .csv."),
    detector: Optional[str] = typer.Option(
        None, "--landmarks", help="Detector: mediapipe, fan, file or any installed one (default: config run.landmarks)."
    ),
    landmarks_file: Optional[Path] = typer.Option(
        None, "--landmarks-file", help="The JSON/CSV file read by '--landmarks file' (sets config landmarks.file)."
    ),
    overlay: Optional[Path] = typer.Option(
        None, "--overlay", help="PNG with the landmarks drawn; for a folder INPUT, a folder of <name>_landmarks.png."
    ),
    config_path: Optional[Path] = typer.Option(None, "--config", help="TOML config file (see default_config.toml)."),
    skip_no_face: bool = typer.Option(
        False, "--skip-no-face", help="Leave out images without a face instead of stopping (or set config run.skip_no_face)."
    ),
    fit: bool = typer.Option(
        False, "--fit", help="Also fit the model's landmarks (stage 1, config run.model) and draw its projected points "
        "(red; orange on the jaw contour) next to the detections in --overlay."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what was written (file, schemas, images with and without a face) as JSON."),
) -> None:
    """Detect landmarks on an image or a folder and write them to a file the 'file' detector reads."""
    config = command_config(config_path, landmarks=detector, landmarks_file=landmarks_file, skip_no_face=skip_no_face or None)
    if output.suffix.lower() not in (".json", ".csv"):
        raise UsageError(f"-o {output} must end in .json or .csv", "e.g. -o landmarks.json")
    folder_input = input_path.is_dir()
    paths = list_images(input_path) if folder_input else [input_path]
    if overlay is not None and not folder_input and overlay.suffix.lower() != ".png":
        raise UsageError(f"--overlay {overlay} must be a .png file", "e.g. --overlay landmarks.png")
    if overlay is not None and folder_input and overlay.suffix:
        raise UsageError(f"--overlay {overlay} must be a folder when INPUT is a folder", "e.g. --overlay overlays/")
    if fit and overlay is None:
        raise UsageError("--fit draws the fitted points into the overlay, but no --overlay was given",
                         "add --overlay landmarks.png (or a folder for a folder INPUT)")
    fitter = _landmark_fitter(config) if fit else None
    found_detector = PluginRegistry().create("detector", config.run.landmarks, config)
    chunks: list[dict[str, LandmarkSet]] = []
    sizes: dict[str, tuple[int, int]] = {}
    try:
        for start in range(0, len(paths), CHUNK):
            batch = paths[start : start + CHUNK]
            images = [load_image(p) for p in batch]
            names = [p.name for p in batch]
            result = found_detector.detect(images, names)
            chunks.append(result)
            sizes.update({n: (im.shape[1], im.shape[0]) for n, im in zip(names, images)})
            if overlay is not None:
                targets = [_overlay_path(overlay, folder_input, name) for name in names]
                fitted = _save_fit_overlays(fitter, images, names, result, targets) if fitter is not None else set()
                for b, (name, image) in enumerate(zip(names, images)):
                    if name not in fitted:
                        save_overlay(targets[b], image, result, b)
    finally:
        close = getattr(found_detector, "close", None)
        if callable(close):
            close()
    sets = {schema: LandmarkSet.cat([c[schema] for c in chunks]) for schema in chunks[0]}
    found_any = torch.stack([s.found for s in sets.values()]).any(dim=0)
    missing = [p for p, f in zip(paths, found_any.tolist()) if not f]
    if missing and not config.run.skip_no_face:
        raise InputError(
            f"no face found in {_names(missing)} (detector '{config.run.landmarks}')",
            "pass --skip-no-face to leave such images out, or give landmarks with --landmarks file",
        )
    if len(missing) == len(paths):
        raise InputError(f"no face found in any image of {input_path}", "check the photos, or try --landmarks fan")
    if missing:
        typer.echo(f"warning: skipping {len(missing)} image(s) without a face: {_names(missing)}", err=True)
    write_landmarks(output, sets, sizes)
    found = int(np.count_nonzero(found_any.numpy()))
    if as_json:
        schemas = {name: s.points.shape[1] for name, s in sets.items()}
        typer.echo(json.dumps({"output": str(output), "schemas": schemas, "images": len(paths), "found": found,
                               "no_face": [str(p) for p in missing]}, indent=2))
        return
    counts = ", ".join(f"{s.points.shape[1]} {name}" for name, s in sets.items())
    typer.echo(f"wrote landmarks ({counts}) of {found} image(s) to {output}")
