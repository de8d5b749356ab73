"""A synthetic face dataset with known answers, for tests, the ``dataset`` benchmark and
trying ``nextface fit-dataset`` without photos or model downloads.

It writes the synthetic model's files with a model plugin's writer (e.g.
``nextface_model_basel.testing.write_synthetic_basel``, for ``--model basel``), one image
per face rendered from the model (random identity, expression and head pose per image), the
exact landmarks of every image in one landmark file, and a config that fits with those files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

#: a quick fit for tiny images (tests and benchmarks); every other key keeps its default
QUICK_FIT = {
    "run": {"device": "cpu", "renderer": "vertex", "landmarks": "file"},
    "light": {"bands": 3},
    "stage1": {"iterations": 120},
    # 6 small steps: at the default rate (0.03, tuned for 200 iterations) the first Adam
    # steps amplify cross-process rounding differences past the dataset tests' tolerances
    "stage2": {"iterations": 6, "learning_rate": 0.01},
    "stage3": {"iterations": 2},
    "render": {"final_samples": 1},
}


@dataclass(frozen=True)
class SyntheticDataset:
    """Paths of a written dataset: ``images`` (a folder, possibly with sub-folders),
    ``landmarks`` (JSON), ``model`` (the model plugin's folder) and ``config`` (TOML)."""

    images: Path
    landmarks: Path
    model: Path
    config: Path
    keys: tuple[str, ...]


def _toml(tables: dict[str, dict[str, object]]) -> str:
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        for key, value in values.items():
            text = ("true" if value else "false") if isinstance(value, bool) else (f'"{value}"' if isinstance(value, str) else repr(value))
            lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def write_synthetic_dataset(folder: str | Path, model: str, write_model: Callable[[Path], object], count: int = 12,
                            size: int = 80, groups: int = 0, seed: int = 0,
                            fit: dict[str, dict[str, object]] | None = None) -> SyntheticDataset:
    """Write ``count`` synthetic faces of ``size``² pixels under ``folder/images``.

    ``model``: the model name the config selects (``run.model``); ``write_model(path)``
    writes the small synthetic model (seed 0) in that model's files into ``path``
    (``folder/model``). ``groups`` > 0 puts the faces in that many sub-folders
    (``person0/`` ...), each one identity seen in several poses (for
    ``--shared-identity``). ``fit``: config tables replacing :data:`QUICK_FIT`.
    """
    from ..config import load_config
    from ..fitting.outputs import save_png
    from ..landmark_files import write_landmarks
    from ..landmarks import LandmarkSet
    from ..plugins import PluginRegistry
    from .model import synthetic_model
    from .scene import render_synthetic, synthetic_scene

    folder = Path(folder)
    model_dir = folder / "model"
    write_model(model_dir)
    tables = {k: dict(v) for k, v in (fit or QUICK_FIT).items()}
    tables.setdefault("run", {})["model"] = model
    tables.setdefault("model", {})["path"] = str(model_dir)
    tables.setdefault("landmarks", {})["file"] = str(folder / "landmarks.json")
    config_path = folder / "config.toml"
    config_path.write_text(_toml(tables), encoding="utf-8")
    config = load_config(config_path)
    face_model = synthetic_model("small")
    renderer = PluginRegistry().create("renderer", "vertex", config)
    keys, sets, sizes = [], [], {}
    for i in range(count):
        group = i % groups if groups else None
        truth = synthetic_scene(face_model, image_size=size, seed=seed + (group if group is not None else i), bands=config.light.bands)
        g = torch.Generator().manual_seed(seed * 1000 + i)
        turn = (torch.rand(3, generator=g, dtype=truth.rotation.dtype) - 0.5) * math.radians(20.0)
        truth.rotation = truth.rotation + turn[None]
        truth.expression = torch.randn(truth.expression.shape, generator=g, dtype=truth.expression.dtype) * 0.5
        image, landmarks = render_synthetic(face_model, truth, renderer, config, image_size=size)
        key = f"person{group}/face{i:03d}" if group is not None else f"face{i:03d}"
        path = folder / "images" / f"{key}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(path, image)
        keys.append(key)
        sets.append(landmarks)
        sizes[key] = (size, size)
    merged = {
        schema: LandmarkSet(schema, torch.cat([s[schema].points for s in sets]), torch.cat([s[schema].confidence for s in sets]),
                            torch.cat([s[schema].found for s in sets]), keys)
        for schema in sets[0]
    }
    write_landmarks(folder / "landmarks.json", merged, sizes)
    return SyntheticDataset(folder / "images", folder / "landmarks.json", model_dir, config_path, tuple(keys))
