"""Binary glTF 2.0 (``.glb``) of a face: mesh, PBR material, camera, morph targets, animation.

The JSON structure is built with pygltflib, which also packs the ``.glb`` container; this
module only decides what goes in. Conventions (DESIGN.md §7):

- positions in the units the caller chose (metres by default), +Y up, +Z out of the face —
  NextFace model space is already oriented that way, only scaled;
- ``uv`` with v counted from the top of the image, which is glTF's convention too;
- material: ``baseColorTexture`` = the diffuse map (sRGB), ``metallicRoughnessTexture``
  with the perceptual roughness in G and metallic 0 (B), the specular map through
  ``KHR_materials_specular`` (``specularColorTexture``) with ``KHR_materials_ior`` ``ior = 0``,
  so that the map *is* the F0 reflectance (the specular–glossiness conversion of the
  extension's specification);
- a camera node, when given, is the glTF camera (looking along its local −Z, +Y up).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
import pygltflib as gl
from PIL import Image

from . import __version__
from .obj import ObjMesh

_FLOAT, _UINT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}


@dataclass
class PbrMaps:
    """The material's maps as uint8 images: ``diffuse [T,T,3]`` and ``specular [T,T,3]`` (sRGB),
    ``roughness [T,T]`` perceptual roughness (see :func:`perceptual_roughness`)."""

    diffuse: np.ndarray
    specular: np.ndarray
    roughness: np.ndarray


@dataclass
class GltfCamera:
    """A perspective camera: vertical field of view (radians), width / height, clip planes,
    and its pose in the scene: ``translation [3]``, ``rotation [4]`` quaternion (x, y, z, w)."""

    yfov: float
    aspect_ratio: float
    znear: float
    zfar: float
    translation: np.ndarray
    rotation: np.ndarray


@dataclass
class MorphAnimation:
    """Per-frame morph-target weights and node pose of the mesh, sampled at ``times [T]`` seconds.

    ``targets [K,N,3]`` position offsets per unit weight, ``names`` one per target;
    ``weights [T,K]``; ``translation [T,3]`` and ``rotation [T,4]`` (x, y, z, w) of the mesh node.
    """

    targets: np.ndarray
    names: list[str]
    times: np.ndarray
    weights: np.ndarray
    translation: np.ndarray
    rotation: np.ndarray
    name: str = "track"


def perceptual_roughness(roughness: np.ndarray) -> np.ndarray:
    """NextFace roughness ``r`` (the GGX/Beckmann α of the shading lobe, :mod:`nextface_core.shading`)
    → the perceptual roughness of glTF, Blender, Unity and Unreal, whose square is α: ``√r``."""
    return np.sqrt(np.clip(roughness, 0.0, 1.0))


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 ``[H,W]`` or ``[H,W,3]`` image as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class _Buffer:
    """The one binary buffer of a ``.glb``, its buffer views and accessors, built in order."""

    blob: bytearray = field(default_factory=bytearray)
    views: list[gl.BufferView] = field(default_factory=list)
    accessors: list[gl.Accessor] = field(default_factory=list)

    def view(self, data: bytes, target: int | None = None) -> int:
        self.blob.extend(b"\0" * (-len(self.blob) % 4))  # every view starts 4-byte aligned
        self.views.append(gl.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=len(data), target=target))
        self.blob.extend(data)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, target: int | None = None, bounds: bool = False) -> int:
        """An accessor over ``array [count]`` or ``[count, C]`` (float32 or uint32)."""
        kind = _UINT if array.dtype == np.uint32 else _FLOAT
        array = np.ascontiguousarray(array, dtype=np.uint32 if kind == _UINT else np.float32)
        columns = 1 if array.ndim == 1 else array.shape[1]
        flat = array.reshape(len(array), columns)
        acc = gl.Accessor(bufferView=self.view(array.tobytes(), target), componentType=kind, count=len(array),
                          type=_TYPES[columns])
        if bounds:
            acc.min, acc.max = flat.min(0).tolist(), flat.max(0).tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1


def glb_bytes(mesh: ObjMesh, maps: PbrMaps, name: str, camera: GltfCamera | None = None,
              animation: MorphAnimation | None = None) -> bytes:
    """The ``.glb`` of one textured face mesh (node ``name``), with an optional camera node
    and an optional morph-target + pose animation of the mesh node."""
    buf = _Buffer()
    attributes = gl.Attributes(
        POSITION=buf.accessor(mesh.vertices, _ARRAY_BUFFER, bounds=True),
        NORMAL=buf.accessor(_unit(mesh.normals), _ARRAY_BUFFER),
        TEXCOORD_0=buf.accessor(mesh.uv, _ARRAY_BUFFER),
    )
    primitive = gl.Primitive(attributes=attributes, indices=buf.accessor(mesh.faces.reshape(-1).astype(np.uint32),
                                                                         _ELEMENT_ARRAY_BUFFER, bounds=True), material=0)
    gltf_mesh = gl.Mesh(name=name, primitives=[primitive])
    images = [maps.diffuse, _metallic_roughness(maps.roughness), maps.specular]
    gltf = gl.GLTF2(
        asset=gl.Asset(version="2.0", generator=f"NextFace {__version__} (pygltflib)"),
        scene=0,
        scenes=[gl.Scene(nodes=[0])],
        nodes=[gl.Node(name=name, mesh=0)],
        meshes=[gltf_mesh],
        samplers=[gl.Sampler(magFilter=9729, minFilter=9987, wrapS=33071, wrapT=33071)],  # linear, clamp to edge
        images=[gl.Image(bufferView=buf.view(png_bytes(im)), mimeType="image/png", name=n)
                for im, n in zip(images, ("diffuse", "metallic_roughness", "specular"))],
        textures=[gl.Texture(sampler=0, source=i) for i in range(3)],
        materials=[_material()],
        extensionsUsed=["KHR_materials_specular", "KHR_materials_ior"],
    )
    if camera is not None:
        gltf.cameras = [gl.Camera(type="perspective", name="photo", perspective=gl.Perspective(
            yfov=camera.yfov, aspectRatio=camera.aspect_ratio, znear=camera.znear, zfar=camera.zfar))]
        gltf.nodes.append(gl.Node(name="photo camera", camera=0, translation=_floats(camera.translation),
                                  rotation=_floats(_normalised(camera.rotation))))
        gltf.scenes[0].nodes.append(1)
    if animation is not None:
        _animate(gltf, buf, animation)
    gltf.accessors, gltf.bufferViews = buf.accessors, buf.views
    gltf.buffers = [gl.Buffer(byteLength=len(buf.blob))]
    gltf.set_binary_blob(bytes(buf.blob))
    return b"".join(gltf.save_to_bytes())


def _material() -> gl.Material:
    return gl.Material(
        name="face",
        pbrMetallicRoughness=gl.PbrMetallicRoughness(
            baseColorTexture=gl.TextureInfo(index=0), metallicRoughnessTexture=gl.TextureInfo(index=1),
            metallicFactor=0.0, roughnessFactor=1.0,  # roughness from the texture's G; metallic 0 (also 0 in its B)
        ),
        extensions={
            "KHR_materials_specular": {"specularColorTexture": {"index": 2}, "specularColorFactor": [1.0, 1.0, 1.0]},
            "KHR_materials_ior": {"ior": 0.0},
        },
        doubleSided=True,  # an open face mask: its inside shows when orbiting behind it
    )


def _metallic_roughness(roughness: np.ndarray) -> np.ndarray:
    """glTF's packed map: R unused (255), G = roughness, B = metallic (0)."""
    out = np.zeros((*roughness.shape[:2], 3), dtype=np.uint8)
    out[..., 0] = 255
    out[..., 1] = roughness.reshape(roughness.shape[:2])
    return out


def _animate(gltf: gl.GLTF2, buf: _Buffer, anim: MorphAnimation) -> None:
    """Morph targets on the mesh, and one animation of its weights, translation and rotation."""
    primitive = gltf.meshes[0].primitives[0]
    primitive.targets = [gl.Attributes(POSITION=buf.accessor(t, _ARRAY_BUFFER, bounds=True)) for t in anim.targets]
    gltf.meshes[0].weights = [float(w) for w in anim.weights[0]]
    gltf.meshes[0].extras = {"targetNames": list(anim.names)}
    node = gltf.nodes[0]
    node.translation, node.rotation = _floats(anim.translation[0]), _floats(_normalised(anim.rotation[0]))
    times = buf.accessor(anim.times.astype(np.float32), bounds=True)
    outputs = [(buf.accessor(anim.weights.reshape(-1)), "weights"), (buf.accessor(anim.translation), "translation"),
               (buf.accessor(_normalised(anim.rotation)), "rotation")]
    gltf.animations = [gl.Animation(
        name=anim.name,
        samplers=[gl.AnimationSampler(input=times, output=out, interpolation="LINEAR") for out, _ in outputs],
        channels=[gl.AnimationChannel(sampler=i, target=gl.AnimationChannelTarget(node=0, path=path))
                  for i, (_, path) in enumerate(outputs)],
    )]


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Unit rows (float32); a zero row (a vertex no triangle uses) becomes +Z."""
    v = np.asarray(vectors, dtype=np.float64)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    v = np.where(norm > 1e-12, v / np.maximum(norm, 1e-12), np.array([0.0, 0.0, 1.0]))
    return v.astype(np.float32)


def _normalised(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return (q / np.linalg.norm(q, axis=-1, keepdims=True)).astype(np.float32)


def _floats(v: np.ndarray) -> list[float]:
    return [float(x) for x in np.asarray(v, dtype=np.float64).reshape(-1)]


def yfov(focal: float, height: int) -> float:
    """Vertical field of view (radians) of a pinhole of ``focal`` pixels over ``height`` pixels."""
    return 2.0 * math.atan(height / (2.0 * focal))
