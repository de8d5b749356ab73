"""The three-stage fit on synthetic faces with known answers (CPU, vertex renderer).

The images are rendered from the built-in synthetic model with known shape, expression,
pose, focal and light; landmarks are the exact projections of the model's landmark
vertices (given to the fit directly, as the ``file`` detector would).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nextface_core.config import load_config
from nextface_core.demo import compare
from nextface_core.synthetic import render_synthetic, synthetic_scene
from nextface_core.fitting import Checkpoint, Fitter, save_result
from nextface_core.landmarks import LandmarkSet

SIZE = 128
FAST = {
    "run.device": "cpu",
    "light.bands": 3,
    "stage1.iterations": 300,
    "stage2.iterations": 80,
    "stage3.iterations": 10,
}


@pytest.fixture(scope="module")
def config():
    return load_config(overrides=FAST)


@pytest.fixture(scope="module")
def quick(config):
    """Fewer photometric iterations: for tests of batch structure, not of accuracy."""
    return config.with_overrides({"stage2.iterations": 25, "stage3.iterations": 3})


def _scene(model, seed, registry, config, rotation_deg=None):
    truth = synthetic_scene(model, image_size=SIZE, seed=seed, bands=config.light.bands)
    if rotation_deg is not None:
        truth.rotation = torch.tensor([[math.radians(a) for a in rotation_deg]], dtype=model.dtype)
    renderer = registry.create("renderer", "vertex", config)
    image, landmarks = render_synthetic(model, truth, renderer, config, image_size=SIZE)
    return truth, image, landmarks


def _stack(sets: list[dict[str, LandmarkSet]]) -> dict[str, LandmarkSet]:
    return {schema: LandmarkSet.cat([s[schema] for s in sets]) for schema in sets[0]}


@pytest.fixture(scope="module")
def single(model, registry, config):
    truth, image, landmarks = _scene(model, 0, registry, config)
    renderer = registry.create("renderer", "vertex", config)
    result = Fitter(config, registry=registry, model=model, renderer=renderer).fit([image], ["face"], landmarks=landmarks)
    return truth, image, landmarks, result


def test_synthetic_recovery_pose_landmarks_photometric_and_light(single, model) -> None:
    truth, _, _, result = single
    report = compare(result, model, truth)
    assert report["rotation error (deg)"] < 2.0
    assert report["landmark error (px)"] < 1.0
    assert report["masked PSNR (dB)"] > 25.0  # mean squared sRGB error below 0.3 %
    assert report["light direction error (deg)"] < 20.0
    assert [s.stage for s in result.stages] == [1, 2, 3]
    losses = result.stages[1].losses
    assert losses[-1] < 0.5 * losses[0]  # the photometric stage makes progress


def test_outputs_exist_and_reload(single, tmp_path) -> None:
    from nextface_core.exr import read_exr
    from nextface_core.obj import read_obj

    result = single[3]
    summary = json.loads(save_result(result, tmp_path).read_text())
    folder = tmp_path / "face"
    for name in ("mesh.obj", "mesh.mtl", "mesh.glb", "camera.json", "diffuse.png", "specular.png", "roughness.png",
                 "pbr_roughness.png", "envmap.png", "envmap.exr", "composite.png", "landmarks.png", "params.npz",
                 "params.json", "report.html"):
        assert (folder / name).is_file(), name
    mesh = read_obj(folder / "mesh.obj")
    assert mesh.vertices.shape == (result.model.n_vertices, 3) and mesh.faces.shape == (result.model.n_faces, 3)
    assert np.allclose(mesh.vertices, result.vertices()[0].numpy() * 1e-3, atol=1e-6)  # metres by default
    env = read_exr(folder / "envmap.exr")
    assert env.shape == (result.config.light.envmap_resolution, 2 * result.config.light.envmap_resolution, 3)
    with np.load(folder / "params.npz", allow_pickle=False) as p:
        assert np.allclose(p["rotation"], result.params.rotation[0].numpy())
    meta = json.loads((folder / "params.json").read_text())
    assert meta["landmark_error_px"] == pytest.approx(summary["images"][0]["landmark_error_px"])
    assert [s["stage"] for s in summary["stages"]] == [1, 2, 3]
    for stage in (1, 2, 3):
        assert (tmp_path / f"loss_stage{stage}.png").is_file()
    assert not list(tmp_path.rglob("*.part*")), "temporary files left behind"


def test_resume_from_stage2_checkpoint_matches(single, model, registry, config, tmp_path) -> None:
    truth, image, landmarks, full = single
    renderer = registry.create("renderer", "vertex", config)
    fitter = Fitter(config, registry=registry, model=model, renderer=renderer)
    partial = fitter.fit([image], ["face"], landmarks=landmarks, skip_stages=[3])
    path = tmp_path / "checkpoint_stage2.npz"
    partial.checkpoint().save(path)
    resumed = fitter.fit([image], ["face"], landmarks=landmarks, start=Checkpoint.load(path))
    assert resumed.completed_stage == 3
    assert [s.stage for s in resumed.stages] == [1, 2, 3]
    # the resumed run skips stages 1-2 and keeps the checkpoint's pose exactly
    assert torch.equal(resumed.params.rotation, partial.params.rotation)
    # against an uninterrupted run: equal up to float-order effects in the optimiser
    angle = (resumed.params.rotation - full.params.rotation).norm()
    assert torch.rad2deg(angle) < 0.5
    assert (resumed.params.diffuse_map - full.params.diffuse_map).abs().mean() < 0.01


def test_shared_identity_gives_one_identity_for_three_views(model, registry, quick) -> None:
    config = quick
    views = [(0, -20, 0), (5, 0, 0), (0, 20, 3)]
    scenes = [_scene(model, 3, registry, config, rotation_deg=v) for v in views]
    names = ["left", "front", "right"]
    landmarks = _stack([s[2] for s in scenes])
    renderer = registry.create("renderer", "vertex", config)
    result = Fitter(config, registry=registry, model=model, renderer=renderer).fit(
        [s[1] for s in scenes], names, landmarks=landmarks, shared_identity=True
    )
    assert result.params.shape.shape[0] == 1 and result.params.diffuse.shape[0] == 1
    assert result.params.expression.shape[0] == 3 and result.params.rotation.shape[0] == 3
    assert result.params.diffuse_map.shape[0] == 1
    yaw = torch.rad2deg(result.params.rotation[:, 1])
    assert yaw[0] < -10 and yaw[2] > 10  # per-image poses stay per image


def test_batch_of_two_people_gives_two_identities(model, registry, quick) -> None:
    config = quick
    a, b = _scene(model, 1, registry, config), _scene(model, 2, registry, config)
    landmarks = _stack([a[2], b[2]])
    renderer = registry.create("renderer", "vertex", config)
    result = Fitter(config, registry=registry, model=model, renderer=renderer).fit(
        [a[1], b[1]], ["a", "b"], landmarks=landmarks
    )
    assert result.params.shape.shape[0] == 2
    assert not torch.allclose(result.params.shape[0], result.params.shape[1])
    for m in result.metrics():
        assert m["landmark_error_px"] < 1.5


def test_images_without_a_face_stop_the_fit_or_are_skipped(model, registry, quick) -> None:
    from nextface_core.errors import InputError

    a, b = _scene(model, 1, registry, quick), _scene(model, 2, registry, quick)
    landmarks = _stack([a[2], b[2]])
    for s in landmarks.values():
        s.found[1] = False  # the detector found no face in "b"
    renderer = registry.create("renderer", "vertex", quick)
    with pytest.raises(InputError, match="no face found in b"):
        Fitter(quick, registry=registry, model=model, renderer=renderer).fit([a[1], b[1]], ["a", "b"], landmarks=landmarks)
    skipping = quick.with_overrides({"run.skip_no_face": True, "stage2.iterations": 2, "stage3.iterations": 0})
    result = Fitter(skipping, registry=registry, model=model, renderer=renderer).fit(
        [a[1], b[1]], ["a", "b"], landmarks=landmarks
    )
    assert result.names == ["a"] and result.params.batch_size == 1
