"""The three-stage fit through the Mitsuba renderer (LLVM on the CPU), short stages.

A synthetic face is rendered by Mitsuba itself with known parameters; the fit must keep the
landmarks aligned and make the photometric stages reduce the image error, for one image and
for a shared-identity pair (one shape, per-image poses).
"""

from __future__ import annotations

import math

import pytest
import torch

from nextface_core.config import load_config
from nextface_core.synthetic import render_synthetic, synthetic_scene
from nextface_core.fitting import Fitter
from nextface_core.landmarks import LandmarkSet
from nextface_core.plugins import PluginRegistry
from nextface_core.synthetic import synthetic_model

SIZE = 64


@pytest.fixture(scope="module")
def setup():
    registry = PluginRegistry()
    config = load_config(
        overrides={
            "run.device": "cpu",
            "run.renderer": "mitsuba",
            "light.bands": 3,
            "render.samples": 4,  # the smallest count Mitsuba's ldsampler takes without rounding it up
            "render.final_samples": 4,
            "stage1.iterations": 200,
            "stage2.iterations": 12,
            "stage3.iterations": 3,
        }
    )
    reg = registry.resolve("renderer", "mitsuba")
    if not reg.availability().ok:
        pytest.skip(f"mitsuba cannot run here: {reg.availability().detail}")
    renderer = reg.build(config)
    return registry, config, synthetic_model("small"), renderer


def _face(setup, seed: int, yaw: float):
    registry, config, model, renderer = setup
    truth = synthetic_scene(model, image_size=SIZE, seed=seed, bands=3)
    truth.rotation = torch.tensor([[0.1, math.radians(yaw), 0.0]])
    image, landmarks = render_synthetic(model, truth, renderer, config, image_size=SIZE)
    return truth, image, landmarks


def test_fit_through_mitsuba_aligns_and_reduces_the_image_error(setup) -> None:
    registry, config, model, renderer = setup
    _, image, landmarks = _face(setup, 0, -15.0)
    result = Fitter(config, registry=registry, model=model, renderer=renderer).fit([image], ["face"], landmarks=landmarks)
    (row,) = result.metrics()
    assert row["landmark_error_px"] < 1.0
    stage2 = result.stages[1].losses
    assert stage2[-1] < stage2[0]
    assert row["psnr_db"] > 20.0


def test_shared_identity_pair_through_mitsuba(setup) -> None:
    registry, config, model, renderer = setup
    faces = [_face(setup, 1, yaw) for yaw in (-15.0, 15.0)]
    sets = {schema: LandmarkSet.cat([f[2][schema] for f in faces]) for schema in faces[0][2]}
    result = Fitter(config, registry=registry, model=model, renderer=renderer).fit(
        [f[1] for f in faces], ["a", "b"], landmarks=sets, shared_identity=True
    )
    assert result.params.shape.shape[0] == 1 and result.params.diffuse_map.shape[0] == 1
    yaw = torch.rad2deg(result.params.rotation[:, 1])
    assert yaw[0] < -8.0 and yaw[1] > 8.0
    assert all(m["landmark_error_px"] < 1.0 for m in result.metrics())
