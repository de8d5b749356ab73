"""mesh.glb, track.glb, mesh.obj and camera.json of real (quick, synthetic) fits and a track:
units, material, camera conventions, morph targets and animation, read back from the files;
and the Khronos glTF validator on every .glb (0 errors, 0 warnings)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import torch
from PIL import Image

from nextface_core.camera import model_to_camera
from nextface_core.exports import OPENCV_TO_OPENGL
from nextface_core.fitting import save_result
from nextface_core.obj import read_obj
from nextface_core.sh import envmap_directions

_NUMPY = {5126: np.float32, 5125: np.uint32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


class Glb:
    """A .glb read back with pygltflib: JSON structure and accessor arrays."""

    def __init__(self, path: Path) -> None:
        self.gltf = pygltflib.GLTF2.load_binary(str(path))
        self.blob = self.gltf.binary_blob()

    def view(self, index: int) -> bytes:
        v = self.gltf.bufferViews[index]
        return self.blob[v.byteOffset: v.byteOffset + v.byteLength]

    def array(self, index: int) -> np.ndarray:
        a = self.gltf.accessors[index]
        data = np.frombuffer(self.view(a.bufferView), dtype=_NUMPY[a.componentType], count=a.count * _WIDTH[a.type])
        return data.reshape(a.count, -1) if _WIDTH[a.type] > 1 else data

    def image(self, texture: int) -> np.ndarray:
        source = self.gltf.textures[texture].source
        return np.asarray(Image.open(io.BytesIO(self.view(self.gltf.images[source].bufferView))))

    @property
    def primitive(self):
        return self.gltf.meshes[0].primitives[0]


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _trs(translation, rotation) -> np.ndarray:
    x, y, z, w = rotation
    r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, translation
    return m


def _fixed_landmark_vertices(result) -> tuple[np.ndarray, int]:
    """Vertex of each fixed (non-contour) fitted landmark row, and how many rows that is."""
    association = result.model.landmarks[result.schema]
    by_landmark = dict(zip(association.landmark_index.tolist(), association.vertex_index.tolist()))
    rows = [by_landmark[int(i)] for i in result.landmark_index if int(i) not in association.contour]
    return np.array(rows), len(rows)


def _project(camera: dict, points: np.ndarray) -> np.ndarray:
    """World points → pixels with camera.json's OpenCV matrix and K."""
    m, k = np.array(camera["world_to_camera_opencv"]), np.array(camera["K"])
    cam = points.astype(np.float64) @ m[:3, :3].T + m[:3, 3]
    pix = cam @ k.T
    return pix[:, :2] / pix[:, 2:]


def test_fit_mesh_glb_is_in_metres_with_the_fit_maps_as_pbr_material(fit_out) -> None:
    result, out = fit_out
    for b, name in enumerate(result.names):
        glb = Glb(out / name / "mesh.glb")
        positions = glb.array(glb.primitive.attributes.POSITION)
        np.testing.assert_allclose(positions, result.vertices()[b].numpy() * 1e-3, atol=1e-7)
        height = positions[:, 1].max() - positions[:, 1].min()
        assert 0.08 < height < 0.3, f"face height {height} m"
        normals = glb.array(glb.primitive.attributes.NORMAL)
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(glb.array(glb.primitive.attributes.TEXCOORD_0), result.model.uv.numpy(), atol=1e-7)
        assert glb.array(glb.primitive.indices).reshape(-1, 3).tolist() == result.model.faces.tolist()

        material = glb.gltf.materials[0]
        pbr = material.pbrMetallicRoughness
        assert np.array_equal(glb.image(pbr.baseColorTexture.index), _png(out / name / "diffuse.png"))
        packed = glb.image(pbr.metallicRoughnessTexture.index)
        rough = result.textures()[2][b, ..., 0].clamp(0, 1).numpy()
        assert np.abs(packed[..., 1].astype(float) - 255.0 * np.sqrt(rough)).max() <= 0.5 + 1e-6  # G = √r (perceptual)
        assert np.array_equal(packed[..., 1], _png(out / name / "pbr_roughness.png"))
        assert pbr.metallicFactor == 0.0 and not packed[..., 2].any()  # metallic 0
        specular = material.extensions["KHR_materials_specular"]
        assert np.array_equal(glb.image(specular["specularColorTexture"]["index"]), _png(out / name / "specular.png"))
        assert material.extensions["KHR_materials_ior"] == {"ior": 0.0}  # F0 = the specular map
        assert {"KHR_materials_specular", "KHR_materials_ior"} <= set(glb.gltf.extensionsUsed)


def test_camera_json_projects_the_exported_meshes_onto_the_fitted_landmarks(fit_out) -> None:
    """mesh.glb and mesh.obj through camera.json's matrices hit the fit's landmarks (< 0.5 px);
    the OpenGL matrices and the glb's camera node are the same camera."""
    result, out = fit_out
    vertices, n_fixed = _fixed_landmark_vertices(result)
    assert n_fixed >= 10
    for b, name in enumerate(result.names):
        camera = json.loads((out / name / "camera.json").read_text())
        h, w = result.batch.sizes[b]
        assert (camera["width"], camera["height"], camera["units"]) == (w, h, "m")
        fitted = result.landmarks[b, :n_fixed].numpy()
        glb = Glb(out / name / "mesh.glb")
        for positions in (glb.array(glb.primitive.attributes.POSITION), read_obj(out / name / "mesh.obj").vertices):
            error = np.linalg.norm(_project(camera, positions[vertices]) - fitted, axis=1)
            assert error.max() < 0.5, error.max()
        cv, gl = np.array(camera["world_to_camera_opencv"]), np.array(camera["world_to_camera_opengl"])
        np.testing.assert_allclose(gl, OPENCV_TO_OPENGL @ cv, atol=1e-12)
        np.testing.assert_allclose(np.array(camera["camera_to_world_opengl"]) @ gl, np.eye(4), atol=1e-9)
        node = next(n for n in glb.gltf.nodes if n.camera is not None)
        np.testing.assert_allclose(_trs(node.translation, node.rotation), camera["camera_to_world_opengl"], atol=1e-6)
        lens = glb.gltf.cameras[node.camera].perspective
        assert lens.yfov == pytest.approx(2 * np.arctan(h / 2 / camera["K"][1][1])) and lens.aspectRatio == pytest.approx(w / h)


def test_camera_json_states_the_env_map_orientation_in_the_world_frame(fit_out) -> None:
    """The env map's up / azimuth-0 / azimuth-90° directions in camera.json are where the
    env-map code looks (row 0, and the horizon at columns 0 and W/4), moved to the world."""
    result, out = fit_out
    camera = json.loads((out / result.names[1] / "camera.json").read_text())
    to_world = np.array(camera["world_to_camera_opencv"])[:3, :3].T
    dirs = envmap_directions(64, dtype=torch.float64).numpy()
    up = dirs[0].mean(0)
    looks = {"up_world": up / np.linalg.norm(up), "azimuth_0_world": dirs[32, 0], "azimuth_90_world": dirs[32, 32]}
    for key, camera_direction in looks.items():
        np.testing.assert_allclose(camera["light"]["envmap"][key], to_world @ camera_direction, atol=0.03)
    light = camera["light"]
    assert len(light["sh_coefficients_rgb"]) == result.config.light.bands ** 2
    np.testing.assert_allclose(light["dominant_direction_world"], to_world @ np.array(light["dominant_direction_camera_opencv"]))


def test_mesh_units_mm_keeps_the_model_units_everywhere(fit_out, tmp_path) -> None:
    result, _ = fit_out
    mm = dataclasses.replace(result, config=result.config.with_overrides({"output.mesh_units": "mm"}))
    save_result(mm, tmp_path, checkpoint=False)
    vertices, n_fixed = _fixed_landmark_vertices(result)
    camera = json.loads((tmp_path / "face0" / "camera.json").read_text())
    glb = Glb(tmp_path / "face0" / "mesh.glb")
    positions = glb.array(glb.primitive.attributes.POSITION)
    np.testing.assert_allclose(positions, result.vertices()[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(read_obj(tmp_path / "face0" / "mesh.obj").vertices, positions, atol=1e-5)
    assert camera["units"] == "mm" and "millimetres" in (tmp_path / "face0" / "mesh.obj").read_text().splitlines()[0]
    assert np.linalg.norm(_project(camera, positions[vertices]) - result.landmarks[0, :n_fixed].numpy(), axis=1).max() < 0.5


def test_shared_identity_writes_the_identity_mesh_and_each_view(shared_out) -> None:
    result, out = shared_out
    params = result.params
    neutral = dataclasses.replace(params, expression=torch.zeros_like(params.expression))
    identity = result.scene.vertices(neutral)[0].detach().numpy()
    glb = Glb(out / "identity" / "mesh.glb")
    np.testing.assert_allclose(glb.array(glb.primitive.attributes.POSITION), identity * 1e-3, atol=1e-7)
    assert not glb.gltf.cameras  # the identity belongs to no single photo
    np.testing.assert_allclose(read_obj(out / "identity" / "mesh.obj").vertices, identity * 1e-3, atol=1e-6)
    vertices, n_fixed = _fixed_landmark_vertices(result)
    for b, name in enumerate(result.names):
        camera = json.loads((out / name / "camera.json").read_text())
        view = Glb(out / name / "mesh.glb")
        positions = view.array(view.primitive.attributes.POSITION)
        assert np.linalg.norm(_project(camera, positions[vertices]) - result.landmarks[b, :n_fixed].numpy(), axis=1).max() < 0.5
        assert np.array_equal(view.image(view.gltf.materials[0].pbrMetallicRoughness.baseColorTexture.index),
                              _png(out / "identity" / "diffuse.png"))


def test_track_glb_replays_every_frame_from_morph_weights_and_node_pose(track_out) -> None:
    """Base mesh + Σ weight × target, moved by the animated node pose, is each frame's mesh in
    the OpenGL frame of the camera node at the origin (to 1 µm)."""
    result, out = track_out
    glb = Glb(out / "track.glb")
    prim = glb.primitive
    base = glb.array(prim.attributes.POSITION).astype(np.float64)
    targets = np.stack([glb.array(t["POSITION"]) for t in prim.targets]).astype(np.float64)  # read back as dicts
    assert len(targets) == result.expression.shape[1]
    assert glb.gltf.meshes[0].extras["targetNames"][0] == "e0"
    animation = glb.gltf.animations[0]
    outputs = {c.target.path: glb.array(animation.samplers[c.sampler].output) for c in animation.channels}
    times = glb.array(animation.samplers[0].input)
    assert len(times) == result.frame_count and np.all(np.diff(times) > 0)
    weights = outputs["weights"].reshape(result.frame_count, -1)
    camera_node = next(n for n in glb.gltf.nodes if n.camera is not None)
    assert camera_node.translation == [0.0, 0.0, 0.0] and camera_node.rotation == [0.0, 0.0, 0.0, 1.0]
    for i in range(result.frame_count):
        local = base + np.einsum("k,knc->nc", weights[i], targets)
        pose = _trs(outputs["translation"][i], outputs["rotation"][i])
        placed = local @ pose[:3, :3].T + pose[:3, 3]
        cam = model_to_camera(result.vertices(i)[None], result.rotation[i:i + 1], result.translation[i:i + 1])[0]
        expected = (cam.double().numpy() * np.array([1.0, -1.0, -1.0])) * 1e-3
        np.testing.assert_allclose(placed, expected, atol=1e-6)


def test_the_khronos_validator_finds_no_error_and_no_warning(fit_out, shared_out, track_out, gltf_validator) -> None:
    files = [fit_out[1] / "face0" / "mesh.glb", shared_out[1] / "identity" / "mesh.glb",
             shared_out[1] / "face1" / "mesh.glb", track_out[1] / "track.glb"]
    reports = gltf_validator(files)
    for path in files:
        issues = reports[str(path)]["issues"]
        found = [(m["code"], m.get("pointer", ""), m["message"]) for m in issues["messages"] if m["severity"] <= 1]
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, (path.name, found)
    info = reports[str(files[-1])]["info"]
    assert info["animationCount"] == 1 and info["hasMorphTargets"] and info["hasTextures"]
