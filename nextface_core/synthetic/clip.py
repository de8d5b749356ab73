"""Synthetic clips with known per-frame parameters, for tests, benchmarks and demos.

Frames are rendered from a morphable model (e.g. :func:`nextface_core.synthetic.synthetic_model`)
with :func:`~nextface_core.synthetic.render_synthetic`; the identity and light are those of
:func:`~nextface_core.synthetic.synthetic_scene`, the head turns and nods and the expression
changes along a smooth trajectory (or stays still). Landmarks are the exact projections
of the model's landmark vertices (MediaPipe does not find these synthetic faces reliably).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..config import Config
from ..landmarks import LandmarkSet
from ..params import SceneParameters
from ..tracking.identity import Identity
from ..tracking.track import frame_name
from .scene import render_synthetic, synthetic_scene


@dataclass
class SyntheticClip:
    """``frames`` ``[H,W,3]`` uint8; ``landmarks`` ``{schema: LandmarkSet}`` over the frames;
    ``truth`` per-frame parameters (batch T, shared identity); ``identity`` the true one."""

    frames: list[np.ndarray]
    landmarks: dict[str, LandmarkSet]
    truth: SceneParameters
    identity: Identity


def trajectory(count: int, moving: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation angles ``[T,3]`` (radians: pitch nod ±6°, yaw −15° → +10°, roll 3°) and
    expression weights ``[T]`` (cos(t/4): the expression fades out and back in reversed)."""
    t = torch.arange(count, dtype=torch.float64)
    if not moving:
        return torch.tensor([[math.radians(4.0), math.radians(-10.0), math.radians(3.0)]]).expand(count, 3), torch.ones(count)
    pitch = torch.deg2rad(6.0 * torch.sin(t / 3.0))
    yaw = torch.deg2rad(-15.0 + 25.0 * t / max(count, 1))
    roll = torch.full_like(t, math.radians(3.0))
    return torch.stack([pitch, yaw, roll], dim=-1), torch.cos(t / 4.0)


def synthetic_clip(model, renderer, config: Config, count: int = 12, size: int = 128, moving: bool = True,
                   seed: int = 1, faceless: tuple[int, ...] = ()) -> SyntheticClip:
    """Render ``count`` frames of ``size``² pixels. Frames listed in ``faceless`` show only
    the background and have no landmarks (``found`` False)."""
    base = synthetic_scene(model, image_size=size, seed=seed, bands=config.light.bands)
    angles, weights = trajectory(count, moving)
    dt, dev = model.dtype, model.device
    frames, points, confidence, rows = [], [], [], []
    for i in range(count):  # one render per frame: a clip of a few frames
        p = replace(base.detached(), rotation=angles[i : i + 1].to(dev, dt), expression=base.expression * float(weights[i]))
        image, sets = render_synthetic(model, p, renderer, config, image_size=size)
        lms = sets["ibug68"]
        if i in faceless:
            image = np.broadcast_to(image[:1, :1], image.shape).copy()  # the background colour only
        frames.append(image)
        points.append(lms.points)
        confidence.append(lms.confidence * (0.0 if i in faceless else 1.0))
        rows.append(p)
    found = torch.tensor([i not in faceless for i in range(count)])
    points_t = torch.cat(points) * found[:, None, None]
    landmarks = {"ibug68": LandmarkSet("ibug68", points_t, torch.cat(confidence), found, [frame_name(i) for i in range(count)])}
    truth = replace(base.detached(), expression=torch.cat([r.expression for r in rows]), rotation=torch.cat([r.rotation for r in rows]),
                    translation=base.translation.expand(count, 3).clone(), focal=base.focal.expand(count).clone(),
                    sh=base.sh.expand(count, -1, -1).clone())
    identity = Identity.from_params(base, torch.tensor([float(size)], dtype=dt, device=dev), "synthetic truth")
    return SyntheticClip(frames, landmarks, truth, identity)
