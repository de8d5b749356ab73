"""The Mitsuba 3 renderer: :class:`RenderInputs` and :class:`RenderSettings` → one in-memory Mitsuba
scene per image → :class:`RenderOutput`.

Each image of a batch gets its own scene (its own camera and light), built once and then
updated in place through ``mi.traverse`` every call, so Dr.Jit reuses its compiled kernels
across iterations instead of recompiling. PyTorch ↔ Dr.Jit gradients go through
``dr.wrap(source="torch", target="drjit")``; silhouettes and shadow boundaries get gradients
from the projective integrator ``prb_projective`` (direct lighting only: ``max_depth = 2``).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch

from nextface_core.options import option
from nextface_core.render import RenderInputs, RenderMode, RenderOutput, RenderSettings

from .backend import CPU_VARIANT, import_mitsuba, variant_for
from .bsdf import PLUGIN_NAME, register
from .convert import ENVMAP_TO_WORLD, SENSOR_TO_WORLD, camera_warp, envmap_data, sensor_settings

log = logging.getLogger(__name__)

#: samples per pixel of the gradients' continuous part (at most the image's): the loss sees the
#: image at the full count, its gradient costs a quarter of that at the default 16
GRADIENT_SAMPLES = 4
#: samples per pixel of ``prb_projective``'s silhouette and shadow-edge terms (at most the image's):
#: on the astronaut at 256 px, 16 spp, they took 8 s of a 9 s backward pass
EDGE_SAMPLES = 1
#: scene id of each camera → its sampler: plain renders use the first, projective ones the second
SENSORS = {"sensor": "ldsampler", "edge_sensor": "independent"}
#: ``shadow_gradients`` option → prb_projective settings for indirect (shadow-edge) discontinuities
SHADOW_GRADIENTS: dict[str, dict[str, Any]] = {
    "unguided": {"guiding": "none"},  # unbiased, noisier; ~4× cheaper than the octree per backward
    "guided": {"guiding": "octree"},  # rebuilds a guiding octree every backward pass (≈1 s on 2 cores)
    "off": {"sppi": 0},  # primary silhouettes only
}


@dataclass(frozen=True)
class MitsubaOptions:
    """``[plugins.render_mitsuba]``: how shadow edges get gradients, and the light map's size."""

    shadow_gradients: str = option(
        "off", "gradients at shadow edges: none (a quarter of a fit's stage-2 time), unbiased and cheap, or octree-guided",
        choices=tuple(SHADOW_GRADIENTS)
    )
    envmap_height: int = option(32, "rows of the internal equirectangular light map (columns 2x); 32 resolves 9 SH bands", min=3)


@dataclass(frozen=True)
class _Layout:
    """What fixes a scene's structure: a change rebuilds the scene, anything else is a parameter update."""

    variant: str
    vertices: int
    faces: int
    image_size: tuple[int, int]
    texture_sizes: tuple[tuple[int, int], ...]  # (rows, columns) of the diffuse, specular, roughness maps


@dataclass
class _Slot:
    """One image's Mitsuba scene, its traversed parameters and its wrapped render function."""

    scene: Any
    params: Any
    faces: torch.Tensor
    uv: torch.Tensor
    render: Callable[..., torch.Tensor] | None = None
    topology_key: tuple = ()


class _Token:
    """Lives exactly as long as the autograd graph of one differentiable render (held by its node)."""


@dataclass
class _Pool:
    """One scene per image. Mitsuba differentiates the scene as it is when ``backward()`` runs, so a
    pool that rendered with gradients stays reserved until that backward ran or its graph was freed."""

    slots: list[_Slot]
    pending: "weakref.ref[_Token] | None" = None

    def free(self) -> bool:
        return self.pending is None or self.pending() is None


class _HoldUntilBackward(torch.autograd.Function):
    """Identity on an image that keeps its pool reserved while the graph lives, and frees it in backward."""

    @staticmethod
    def forward(ctx: Any, image: torch.Tensor, pool: _Pool, token: _Token) -> torch.Tensor:
        ctx.pool, ctx.token = pool, token
        return image.view_as(image)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        ctx.pool.pending = None  # Mitsuba's own backward for this image runs next, before any new render
        return grad, None, None


def _bitmap(mi: Any, channels: int, size: tuple[int, int]) -> dict[str, Any]:
    return {
        "type": "bitmap",
        "bitmap": mi.Bitmap(torch.zeros(*size, channels).numpy()),
        "raw": True,  # linear data, no sRGB decoding
        "filter_type": "bilinear",
        "wrap_mode": "clamp",
    }


def _bsdf(mi: Any, sizes: tuple[tuple[int, int], ...]) -> Any:
    """The NextFace shading model as a BSDF (:mod:`.bsdf`), its three maps from textures."""
    return mi.load_dict(
        {
            "type": PLUGIN_NAME,
            "diffuse": _bitmap(mi, 3, sizes[0]),
            "specular": _bitmap(mi, 3, sizes[1]),
            "roughness": _bitmap(mi, 1, sizes[2]),
        }
    )


def _sensor(sampler: str, width: int, height: int) -> dict[str, Any]:
    """A perspective camera with a ``sampler``; its field of view and principal point are set per render."""
    import mitsuba as mi

    return {
        "type": "perspective",
        "fov_axis": "x",
        "fov": 45.0,
        "to_world": mi.ScalarTransform4f(SENSOR_TO_WORLD),
        "film": {
            "type": "hdrfilm",
            "width": width,
            "height": height,
            "pixel_format": "rgba",
            "rfilter": {"type": "box"},  # a sample counts for its own pixel only
            "sample_border": True,  # gradients for geometry entering/leaving the frame
        },
        "sampler": {"type": sampler},
    }


_KEYS = {
    "positions": "face.vertex_positions",
    "normals": "face.vertex_normals",
    "texcoords": "face.vertex_texcoords",
    "faces": "face.faces",
    "diffuse": "face.bsdf.diffuse.data",
    "specular": "face.bsdf.specular.data",
    "roughness": "face.bsdf.roughness.data",
    "envmap": "light.data",
}
#: per camera of :data:`SENSORS`: field of view and principal point
_CAMERA_KEYS = {"fov": "x_fov", "offset_x": "principal_point_offset_x", "offset_y": "principal_point_offset_y"}


class MitsubaRenderer:
    """Differentiable Mitsuba 3 path tracer behind the NextFace :class:`Renderer` protocol.

    Shading is the core's model (:mod:`.bsdf`) lit by the SH light as an environment map,
    direct lighting only, with shadows. The image is differentiable w.r.t. vertices, normals,
    the three texture maps, the light, focal and principal point; the coverage ``mask`` carries
    no gradient (Mitsuba's alpha is not differentiated) — silhouette gradients reach the loss
    through the image, whose background is 0. Silhouettes always get gradients (projective
    sampling of primary visibility). ``shadow_gradients``: how shadow edges get theirs, a key
    of :data:`SHADOW_GRADIENTS`. ``envmap_height``: rows of the internal equirectangular light
    map (columns = 2×, at least 3); 32 resolves all 9 SH bands. From a config, both come
    checked from :class:`MitsubaOptions`.
    """

    name = "mitsuba"

    def __init__(self, shadow_gradients: str = "off", envmap_height: int = 32) -> None:
        self.shadow_gradients = shadow_gradients
        self.envmap_height = envmap_height
        self._pools: list[_Pool] = []
        self._layout: _Layout | None = None
        self._integrators: dict[tuple[RenderMode, int, bool], Any] = {}

    # -- scene construction ---------------------------------------------------------------

    def _start(self, mi: Any, dr: Any, layout: _Layout) -> None:
        """New layout: no integrators yet, no pools (graphs still holding old pools keep them alive)."""
        register(mi, dr)
        self._integrators = {}
        self._pools = []
        self._layout = layout

    def _integrator(self, mi: Any, mode: RenderMode, samples: int, projective: bool) -> Any:
        """The integrator of one render, made once per (mode, samples, projective).

        Direct lighting only (camera → surface → light), the light invisible (background 0).
        ``projective``: ``prb_projective`` with ``samples`` per pixel for the image and its
        continuous derivatives but only :data:`EDGE_SAMPLES` for the silhouette and shadow-edge
        terms, which cost far more per sample. Otherwise plain ``prb``: nothing moves an edge when
        the vertices need no gradient, and Mitsuba's scene keeps listing a mesh as a silhouette
        once its vertices had a gradient, so ``prb_projective`` would sample edges for nothing.
        """
        key = (mode, samples, projective)
        if key not in self._integrators:
            direct: dict[str, Any] = {"type": "prb", "max_depth": 2, "hide_emitters": True}
            if projective:
                edges = min(EDGE_SAMPLES, samples)
                direct.update({"type": "prb_projective", "sppc": min(GRADIENT_SAMPLES, samples), "sppp": edges, "sppi": edges,
                               **SHADOW_GRADIENTS[self.shadow_gradients]})
            if mode == RenderMode.ALBEDO:  # the diffuse lobe's albedo AOV, the path tracer underneath for the alpha
                direct = {"type": "aov", "aovs": "albedo:albedo", "integrator": direct}
            self._integrators[key] = mi.load_dict(direct)
        return self._integrators[key]

    def _pool(self, mi: Any, dr: Any, inputs: RenderInputs) -> _Pool:
        """A free pool with at least B scenes: an existing one (kernels and scenes reused) or a new one."""
        for pool in self._pools:
            if pool.free() and len(pool.slots) >= inputs.batch_size:
                return pool
        layout = self._layout
        height, width = layout.image_size
        slots = []
        for _ in range(inputs.batch_size):
            props = mi.Properties()
            props["bsdf"] = _bsdf(mi, layout.texture_sizes)  # one per scene: textures differ per image
            mesh = mi.Mesh("face", layout.vertices, layout.faces, props, has_vertex_normals=True, has_vertex_texcoords=True)
            scene = mi.load_dict(
                {
                    "type": "scene",
                    # the same camera twice: low-discrepancy samples (~30 % less noise than independent
                    # at 4 spp) for plain renders; the projective one needs independent samples because
                    # ldsampler rounds its EDGE_SAMPLES up to a square (4, with a warning)
                    **{name: _sensor(sampler, width, height) for name, sampler in SENSORS.items()},
                    "face": mesh,
                    "light": {
                        "type": "envmap",
                        "bitmap": mi.Bitmap(torch.ones(self.envmap_height, 2 * self.envmap_height, 3).numpy()),
                        "to_world": mi.ScalarTransform4f(ENVMAP_TO_WORLD),
                    },
                }
            )
            params = mi.traverse(scene)
            params.keep([*_KEYS.values(), *(f"{c}.{k}" for c in SENSORS for k in _CAMERA_KEYS.values())])
            slot = _Slot(scene, params, inputs.faces.new_empty(0), inputs.uv.new_empty(0))
            slot.render = self._wrap(mi, dr, slot)
            slots.append(slot)
        self._pools.append(_Pool(slots))
        return self._pools[-1]

    @staticmethod
    def _wrap(mi: Any, dr: Any, slot: _Slot) -> Callable[..., torch.Tensor]:
        """The slot's render function: PyTorch tensors in, ``[H,W,C]`` image out, gradients via ``dr.wrap``."""

        @dr.wrap(source="torch", target="drjit")
        def render(positions, normals, diffuse, specular, roughness, envmap, sensor, spp, seed, integrator, projective):
            params = slot.params
            params[_KEYS["positions"]] = positions.array
            params[_KEYS["normals"]] = normals.array
            params[_KEYS["diffuse"]] = diffuse
            params[_KEYS["specular"]] = specular
            params[_KEYS["roughness"]] = roughness
            params[_KEYS["envmap"]] = envmap
            camera = tuple(SENSORS)[int(projective)]
            for key, value in zip(_CAMERA_KEYS.values(), sensor):
                # opaque: a literal would be baked into the kernels, recompiling them for every new focal
                params[f"{camera}.{key}"] = dr.opaque(mi.Float, value)
            params.update()
            sensor = next(s for s in slot.scene.sensors() if s.id() == camera)
            # the image's count; with spp=0 the projective integrator keeps its own (fewer) edge samples
            sensor.sampler().set_sample_count(spp)
            return mi.render(slot.scene, params, sensor=sensor, integrator=integrator, seed=seed,
                             spp=0 if projective else spp, spp_grad=0 if projective else min(GRADIENT_SAMPLES, spp))

        return render

    def _sync_topology(self, slot: _Slot, inputs: RenderInputs) -> None:
        """Upload faces and uv when they differ from the last ones (usually only the first call)."""
        faces = inputs.faces.detach()
        uv = inputs.uv.detach()
        # the same, unmodified tensor objects as last time (the fit's case) need no comparison;
        # the key holds the objects, so their memory cannot be reused by other tensors meanwhile
        key = tuple((t, t._version) for t in (inputs.faces, inputs.uv))
        if _same_key(key, slot.topology_key) or (torch.equal(slot.faces, faces) and torch.equal(slot.uv, uv)):
            slot.topology_key = key
            return
        slot.params[_KEYS["faces"]] = faces.to(torch.int32).reshape(-1).cpu().numpy()
        slot.params[_KEYS["texcoords"]] = uv.to(torch.float32).reshape(-1).cpu().numpy()
        slot.params.update()
        slot.faces, slot.uv = faces.clone(), uv.clone()
        slot.topology_key = key

    # -- rendering ------------------------------------------------------------------------

    def render(self, inputs: RenderInputs, settings: RenderSettings) -> RenderOutput:
        """Render ``inputs`` with ``settings.samples`` per pixel from ``settings.seed`` → linear RGB
        ``[B,H,W,3]`` and coverage ``[B,H,W,1]`` at ``settings.image_size``."""
        _check(inputs)
        device = inputs.vertices.device
        variant = variant_for(device)
        mi, dr = import_mitsuba(variant)
        if variant == CPU_VARIANT:
            _one_torch_thread()
        b = inputs.batch_size
        layout = _Layout(
            variant, inputs.vertices.shape[1], inputs.faces.shape[0], settings.image_size,
            tuple(tuple(t.shape[1:3]) for t in (inputs.diffuse, inputs.specular, inputs.roughness)),
        )
        if layout != self._layout:
            self._start(mi, dr, layout)
        pool = self._pool(mi, dr, inputs)
        diffuse, specular, roughness = _material_textures(inputs, settings.mode)
        envmap = envmap_data(inputs.sh.float(), self.envmap_height)
        sensor = sensor_settings(inputs.focal.detach().double(), inputs.principal_point.detach().double(), settings.image_size)
        # silhouettes and shadow edges need sampling only where the vertices get a gradient
        projective = inputs.vertices.requires_grad and torch.is_grad_enabled()
        integrator = self._integrator(mi, settings.mode, settings.samples, projective)
        rgba = []
        # Mitsuba renders one sensor of one scene per call, so images are a loop of B kernel launches
        for i in range(b):
            slot = pool.slots[i]
            self._sync_topology(slot, inputs)
            image = slot.render(
                inputs.vertices[i].float().contiguous(),
                inputs.normals[i].float().contiguous(),
                diffuse[min(i, diffuse.shape[0] - 1)],
                specular[min(i, specular.shape[0] - 1)],
                roughness[min(i, roughness.shape[0] - 1)],
                envmap[i],
                tuple(sensor[i].tolist()),
                settings.samples,
                settings.seed,
                integrator,
                projective,
            )
            rgba.append(image)
        out = torch.stack(rgba)
        if out.requires_grad:
            token = _Token()
            pool.pending = weakref.ref(token)
            out = _HoldUntilBackward.apply(out, pool, token)
        out = out.to(device=device, dtype=inputs.vertices.dtype)
        if settings.mode == RenderMode.ALBEDO:
            image, mask = out[..., 4:7], out[..., 3:4]
        else:
            image, mask = out[..., :3], out[..., 3:4]
        image = camera_warp(image, inputs.focal, inputs.principal_point)
        return RenderOutput(image=image, mask=mask)

    def release(self) -> None:
        """Drop every Mitsuba scene (and its Dr.Jit memory); the next render rebuilds them."""
        self._pools = []
        self._integrators = {}
        self._layout = None


def _one_torch_thread() -> None:
    """Run PyTorch on one thread once Dr.Jit renders on the CPU (a process-wide setting).

    PyTorch's OpenMP workers keep spinning between operations and take the cores from Dr.Jit's
    thread pool: on the astronaut (256 px, 2 cores) a stage-3 iteration took 2.2 s with PyTorch's
    default threads and 0.28 s with one; what PyTorch computes around a render is small.
    """
    if torch.get_num_threads() > 1:
        log.info("PyTorch set to 1 thread: its OpenMP workers would compete with Dr.Jit's thread pool")
        torch.set_num_threads(1)


def _same_key(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x is y and vx == vy for (x, vx), (y, vy) in zip(a, b))


def _check(inputs: RenderInputs) -> None:
    """Reject what Mitsuba would crash on or silently misrender, naming the fix (samples and
    image size are checked by :class:`RenderSettings` itself)."""
    n = inputs.vertices.shape[1]
    if inputs.faces.numel() and (int(inputs.faces.min()) < 0 or int(inputs.faces.max()) >= n):
        raise ValueError(
            f"RenderInputs.faces index vertices outside [0, {n}) (min {int(inputs.faces.min())}, "
            f"max {int(inputs.faces.max())}); faces must index the {n} vertices"
        )


def _material_textures(inputs: RenderInputs, mode: RenderMode) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three texture tensors the BSDF receives in ``mode`` (float32, ``[B or 1,T,T,C]``).

    ``lighting`` renders a white Lambertian surface (no glossy lobe), as the core defines it;
    ``albedo`` reads the diffuse texture through Mitsuba's albedo AOV.
    """
    diffuse, specular, roughness = (t.float().contiguous() for t in (inputs.diffuse, inputs.specular, inputs.roughness))
    if mode == RenderMode.LIGHTING:
        return torch.ones_like(diffuse[:1]), torch.zeros_like(specular[:1]), roughness[:1].detach()
    if mode == RenderMode.ALBEDO:
        return diffuse, torch.zeros_like(specular[:1]), roughness[:1].detach()
    return diffuse, specular, roughness
