"""Dense-landmark calibration (:mod:`nextface_core.calibration`) on the small synthetic model:
exact back-projection, surface-point associations in the fit, the stored table, the
fallback warning, and a calibration with the real MediaPipe detector."""

from __future__ import annotations

import json
import logging
import time

import pytest
import torch

from nextface_core import calibration, dense_landmarks
from nextface_core.camera import model_to_camera, project
from nextface_core.config import load_config
from nextface_core.errors import InputError
from nextface_core.fitting import Fitter
from nextface_core.fitting.scene import FaceScene, LandmarkRows
from nextface_core.landmarks import LandmarkSet
from nextface_core.model import LandmarkAssociation
from nextface_core.raster import rasterize
from nextface_core.synthetic.scene import projected_landmarks

SIZE = 256


def _surface_points(model, params, count: int, seed: int):
    """Random surface points of ``model`` posed by ``params``: faces ``[B,count]``,
    barycentrics ``[B,count,3]``, camera points ``[B,count,3]`` and camera vertices."""
    g = torch.Generator().manual_seed(seed)
    b = params.batch_size
    pp = torch.full((b, 2), SIZE / 2.0, dtype=torch.float64)
    verts = FaceScene(model.to(dtype=torch.float64), (SIZE, SIZE), pp, 8).vertices(params)
    cam = model_to_camera(verts, params.rotation, params.translation)
    faces = torch.randint(0, model.n_faces, (b, count), generator=g)
    w = torch.rand(b, count, 3, generator=g, dtype=torch.float64) + 0.05
    w = w / w.sum(-1, keepdim=True)
    corners = cam[torch.arange(b)[:, None, None], model.faces[faces]]  # [B,count,3,3]
    return faces, w, (corners * w[..., None]).sum(2), cam, pp


def test_back_projection_is_exact_on_synthetic_renders(model) -> None:
    params = calibration.calibration_views(model.to(dtype=torch.float64), SIZE, 4, seed=3)
    faces, w, points, cam, pp = _surface_points(model, params, 400, seed=0)
    pixels = project(points, params.focal, pp)
    # the visible ones: nearest surface at their pixel
    depth = rasterize(project(cam, params.focal, pp), cam[..., 2], model.faces.to(torch.int32), (SIZE, SIZE)).depth
    x, y = pixels[..., 0].long().clamp(0, SIZE - 1), pixels[..., 1].long().clamp(0, SIZE - 1)
    visible = (depth[torch.arange(4)[:, None], y, x] - points[..., 2]).abs() < 0.5
    assert int(visible.sum()) > 300
    got_face, got_w = calibration.back_project(pixels, cam, model.faces, params.focal, pp, (SIZE, SIZE))
    hit = got_face >= 0
    assert bool(hit[visible].all()), "every visible surface point is found"
    corners = cam[torch.arange(4)[:, None, None], model.faces[got_face.clamp_min(0)]]
    again = project((corners * got_w[..., None]).sum(2), params.focal, pp)
    err = (again - pixels).norm(dim=-1)[visible]
    assert float(err.max()) <= 0.5 and float(err.median()) < 1e-6, err.max()
    # back on the very surface point (same face where it is the visible one)
    assert float((got_face == faces)[visible].double().mean()) > 0.97
    # a pixel with no surface: no face
    off, _ = calibration.back_project(torch.tensor([[[1.0, 1.0]]], dtype=torch.float64).expand(4, 1, 2), cam,
                                      model.faces, params.focal, pp, (SIZE, SIZE))
    assert bool((off == -1).all())


def test_surface_point_association_projects_like_the_mesh(model) -> None:
    """Gathered rows of a barycentric association give the same pixels as the full mesh."""
    n = 20
    g = torch.Generator().manual_seed(1)
    tri = torch.randint(0, model.n_faces, (n,), generator=g)
    w = torch.rand(n, 3, generator=g) + 0.1
    w = w / w.sum(-1, keepdim=True)
    assoc = LandmarkAssociation(torch.arange(n), model.faces[tri], barycentric=w, weight=torch.linspace(0.2, 1.0, n))
    rows = LandmarkRows.gather(model, "dense", assoc)
    params = calibration.calibration_views(model, SIZE, 2, seed=5)
    pp = torch.full((2, 2), SIZE / 2.0)
    scene = FaceScene(model, (SIZE, SIZE), pp, 8, {"dense": rows})
    got = scene.project_landmarks(params, "dense")
    want = project(model_to_camera(assoc.points(scene.vertices(params)), params.rotation, params.translation), params.focal, pp)
    assert torch.allclose(got, want, atol=1e-3)
    assert torch.allclose(rows.weights, assoc.weight)
    with pytest.raises(ValueError, match="vertex_index has shape"):
        LandmarkAssociation(torch.arange(n), tri, barycentric=w)


def _fake_dense(sets: dict[str, LandmarkSet]) -> dict[str, LandmarkSet]:
    """The synthetic truth plus a 478-point set, as the mediapipe detector gives both."""
    ibug = sets["ibug68"]
    b = ibug.points.shape[0]
    dense = LandmarkSet("mediapipe478", torch.zeros(b, 478, 2), torch.ones(b, 478), ibug.found.clone(), ibug.names)
    return {"mediapipe478": dense, **sets}


def test_fallback_to_ibug68_warns_once(model, registry, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("NEXTFACE_CACHE_DIR", str(tmp_path))
    params = calibration.calibration_views(model, SIZE, 1, seed=2)
    detections = _fake_dense(projected_landmarks(model, params, SIZE, ["face"]))
    config = load_config(overrides={"run.device": "cpu", "fit.stages": ["landmarks"], "stage1.iterations": 20})
    image = torch.zeros(SIZE, SIZE, 3, dtype=torch.uint8).numpy()
    with caplog.at_level(logging.WARNING):
        result = Fitter(config, registry=registry, model=model).fit([image], ["face"], landmarks=detections)
    assert result.schema == "ibug68"
    lines = [r.getMessage() for r in caplog.records if "calibration" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "no mediapipe478 calibration" in lines[0] and "nextface model calibrate-landmarks" in lines[0]
    assert "\n" not in lines[0]
    caplog.clear()
    sparse = config.with_overrides({"landmarks.dense": False})
    with caplog.at_level(logging.WARNING):
        Fitter(sparse, registry=registry, model=model).fit([image], ["face"], landmarks=detections)
    assert not [r for r in caplog.records if "calibration" in r.getMessage()]


def test_stored_table_is_checked(model, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEXTFACE_CACHE_DIR", str(tmp_path))
    path = dense_landmarks.cache_path(model)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"format": dense_landmarks.FORMAT, "schema": "mediapipe478"}))
    with pytest.raises(InputError, match="is malformed") as info:
        dense_landmarks.find_calibration(model)
    assert "calibrate-landmarks" in info.value.hint
    path.write_text("{not json")
    with pytest.raises(InputError, match="cannot be read"):
        dense_landmarks.find_calibration(model)


@pytest.fixture(scope="module")
def synthetic_calibration(model, registry, tmp_path_factory):
    """The small synthetic model calibrated with the real MediaPipe detector (24 renders)."""
    pytest.importorskip("mediapipe")
    pytest.importorskip("skimage")
    config = load_config(overrides={"run.device": "cpu", "run.max_resolution": 512})
    start = time.perf_counter()
    texture = calibration.texture_from_photo(model, calibration.default_photo(), config, registry, resolution=256)
    renderer, detector = registry.create("renderer", "vertex", config), registry.create("detector", "mediapipe", config)
    runs = [calibration.calibrate(model, renderer, detector, texture, views=24, image_size=SIZE) for _ in range(2)]
    detector.close()
    return runs, (time.perf_counter() - start) / 2, texture


def test_calibration_of_the_synthetic_model(synthetic_calibration, model, registry, tmp_path, monkeypatch) -> None:
    (first, second), seconds, _ = synthetic_calibration
    assert seconds < 120.0, f"one calibration took {seconds:.0f} s"  # ~15 s on an idle 2-core machine
    assert first.detected >= 20 and first.renders == 24
    c = first.calibration
    assert c.landmarks.numel() >= 400 and first.fixed + first.contour + first.left_out == 468  # irises left out
    assert not set(c.landmarks.tolist()) & set(calibration.FREE_POINTS)
    assert float(c.spread_mm.median()) < 5.0
    assert bool(((c.weight > 0) & (c.weight <= 1)).all()) and bool((c.barycentric >= -1e-9).all())
    # the same renders and detections: the same table (stable to far below 1 mm)
    mean = model.shape_mean.double()[None]
    same = (c.points(mean, model.faces) - second.calibration.points(mean, model.faces)).norm(dim=-1)
    assert torch.equal(c.landmarks, second.calibration.landmarks) and float(same.max()) <= 1e-6
    # stored in the cache, the fit attaches it and fits all its points
    monkeypatch.setenv("NEXTFACE_CACHE_DIR", str(tmp_path))
    dense_landmarks.save_calibration(c, dense_landmarks.cache_path(model))
    attached = dense_landmarks.attach_calibration(model)
    assoc = attached.landmarks["mediapipe478"]
    assert assoc.vertex_index.shape == (c.landmarks.numel(), 3) and len(assoc.contour) == first.contour
    roundtrip = dense_landmarks.find_calibration(model)
    assert roundtrip is not None and torch.equal(roundtrip.faces, c.faces)


def test_the_tracker_follows_the_dense_landmarks(synthetic_calibration, model, registry, tmp_path, monkeypatch) -> None:
    """Four frames of one textured synthetic face, detected by MediaPipe: ``nextface track``'s
    code fits mediapipe478 with the calibration's weights, and its poses are nearer the truth
    than with the ibug68 view of the same detections."""
    from nextface_core.camera import axis_angle_to_matrix
    from nextface_core.tracking import track_frames

    (run, _), _, texture = synthetic_calibration
    monkeypatch.setenv("NEXTFACE_CACHE_DIR", str(tmp_path))
    dense_landmarks.save_calibration(run.calibration, dense_landmarks.cache_path(model))
    truth = calibration.calibration_views(model, SIZE, 4, seed=7)
    truth.shape = truth.shape[:1].expand(4, -1).clone()  # one person
    config = load_config(overrides={"run.device": "cpu", "track.keyframes": 2, "track.photometric_iterations": 0,
                                    "stage1.iterations": 200, "fit.stages": ["landmarks"]})
    renderer = registry.create("renderer", "vertex", config)
    frames, _ = calibration.render_views(model, renderer, texture, truth, SIZE)
    detector = registry.create("detector", "mediapipe", config)
    detections = detector.detect(frames, [f"frame{i:06d}" for i in range(4)])
    detector.close()
    def errors(cfg) -> tuple[str, torch.Tensor]:
        result = track_frames(lambda: iter(frames), cfg, registry=registry, model=model, renderer=renderer,
                              landmarks=detections)
        r = axis_angle_to_matrix(result.rotation.double()) @ axis_angle_to_matrix(truth.rotation.double()).transpose(-1, -2)
        return result.schema, torch.rad2deg(torch.acos(((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)))

    schema, dense = errors(config)
    sparse_schema, sparse = errors(config.with_overrides({"landmarks.dense": False}))
    assert (schema, sparse_schema) == ("mediapipe478", "ibug68")
    # measured: 9-11 degrees against 15-19 (the synthetic model's ibug68 table is not MediaPipe's ibug view)
    assert float(dense.mean()) <= 0.75 * float(sparse.mean()), (dense, sparse)
