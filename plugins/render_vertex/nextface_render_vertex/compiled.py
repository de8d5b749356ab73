"""The compiled CPU path of the ``vertex`` renderer: C++ kernels (``csrc/kernels.cpp``) behind autograd.

Three kernels, each with an analytic backward, called through ctypes on CPU tensors
(float32 or float64, the dtype of the vertices):

1. :func:`zbuffer` — visibility: the face index per pixel centre and each face's screen
   orientation, bit-identical to :func:`nextface_core.raster.rasterize`'s (no gradient);
2. :class:`_ShadePixels` — per covered pixel: perspective-correct barycentrics,
   interpolation of position / normal / uv, bilinear lookups of the three maps (and of
   the shadow factors that multiply the diffuse and specular values) and the SH shading
   of :mod:`nextface_core.shading`, all in one pass over the pixels; its backward returns
   gradients for screen positions, depths, vertices, normals, maps, shadow factors and
   the SH light (evaluated on the monomial basis of :mod:`nextface_core.shading`);
3. :class:`_Antialias` — the silhouette blending of :func:`nextface_core.raster.antialias`.

The library is built when the plugin is installed (``setup.py``: a C++17 shared library
with no Python or torch headers). Reductions run in a fixed order, so renders and
gradients are bit-identical run to run whatever the number of threads.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor
from torch.profiler import record_function

from nextface_core.camera import project
from nextface_core.render import RenderInputs, RenderMode, RenderOutput, RenderSettings
from nextface_core.sh import lambert_kernel
from nextface_core.shading import _bands_of, _block_size, _monomial_tables

_P = ctypes.c_void_p
_I = ctypes.c_int
_ABI = 4


class _Texture(ctypes.Structure):
    _fields_ = [("data", _P), ("grad", _P), ("batch", _I), ("height", _I), ("width", _I), ("channels", _I)]


class _ShadeArgs(ctypes.Structure):
    _fields_ = [(n, _I) for n in ("B", "N", "H", "W", "F", "mode", "bands", "covered_count", "threads")] + [
        ("covered", _P), ("face_index", _P), ("faces", _P), ("pixels", _P), ("depth", _P), ("positions", _P),
        ("normals", _P), ("uv", _P), ("tex", _Texture * 3), ("shadow", _Texture), ("rows", _I), ("diffuse_rows", _I * 2),
        ("band_rows", _I * 9), ("band_start", _I * 9), ("gen", _P), ("deriv", _P), ("deriv_power", _P),
        ("sh", _P), ("conv", _P), ("lambert", _P), ("image", _P), ("depth_image", _P), ("grad_image", _P),
        ("grad_pixels", _P), ("grad_depth", _P), ("grad_positions", _P), ("grad_normals", _P), ("grad_sh", _P),
        ("wd", _P), ("wg", _P), ("surfaces", _P),
    ]


class _AntialiasArgs(ctypes.Structure):
    _fields_ = [(n, _I) for n in ("B", "N", "H", "W", "F", "C")] + [
        ("face_index", _P), ("faces", _P), ("silhouette", _P), ("depth_image", _P), ("pixels", _P),
        ("values", _P), ("out", _P), ("pair_inside", _P), ("pair_outside", _P), ("pair_edge", _P),
        ("pair_t", _P), ("pair_count", _P), ("grad_out", _P), ("grad_values", _P), ("grad_pixels", _P),
    ]


@lru_cache(maxsize=1)
def _library() -> tuple[Any, str]:
    """The loaded kernel library and a status line (library None when it cannot be loaded)."""
    override = os.environ.get("NEXTFACE_VERTEX_KERNELS")
    spec = importlib.util.find_spec("nextface_render_vertex._kernels")
    path = override or (spec.origin if spec is not None else None)
    if not path:
        return None, "compiled kernels: not built (reinstall the plugin: pip install -e plugins/render_vertex)"
    source = os.path.join(os.path.dirname(__file__), "csrc", "kernels.cpp")
    if not override and os.path.exists(source) and os.path.getmtime(source) > os.path.getmtime(path):
        return None, "compiled kernels: csrc/kernels.cpp is newer than its build (rebuild: pip install -e plugins/render_vertex)"
    try:
        lib = ctypes.CDLL(path)
        lib.nf_surface_bytes_f32.restype = lib.nf_surface_bytes_f64.restype = ctypes.c_int64
        if lib.nf_abi_version() != _ABI:
            return None, f"compiled kernels: {path} is an old build (reinstall the plugin)"
    except OSError as exc:
        return None, f"compiled kernels: cannot load {path} ({exc})"
    return lib, f"compiled kernels: cpu ({os.path.basename(path)})"


def available() -> bool:
    """True when the kernel library is built and loads."""
    return _library()[0] is not None


def status() -> str:
    """One line for ``nextface plugins list``."""
    return _library()[1]


def supports(inputs: RenderInputs) -> bool:
    """Whether these inputs can take the compiled path (CPU tensors, float32/float64, library loaded)."""
    return available() and inputs.vertices.device.type == "cpu" and inputs.vertices.dtype in (torch.float32, torch.float64)


def _fn(name: str, dtype: torch.dtype) -> Any:
    return getattr(_library()[0], f"{name}_{'f64' if dtype == torch.float64 else 'f32'}")


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def zbuffer(pixels: Tensor, depth: Tensor, faces: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Visible face per pixel centre → ``face_index [B·H·W]`` int32 (−1: none) and ``orientation [B,F]``
    (sign of each face's screen area), for ``pixels [B,N,2]``, ``depth [B,N]``, int32 ``faces [F,3]``."""
    height, width = image_size
    batch, n_verts = pixels.shape[:2]
    pixels, depth = pixels.detach().contiguous(), depth.detach().contiguous()
    faces = faces.to(torch.int32).contiguous()
    face_index = torch.empty(batch * height * width, dtype=torch.int32)
    orientation = torch.empty(batch, faces.shape[0], dtype=pixels.dtype)
    _fn("nf_zbuffer", pixels.dtype)(
        _P(pixels.data_ptr()), _P(depth.data_ptr()), _P(faces.data_ptr()), batch, n_verts, faces.shape[0],
        height, width, torch.get_num_threads(), _P(face_index.data_ptr()), _P(orientation.data_ptr()),
    )
    return face_index, orientation


def barycentrics(
    pixels: Tensor, depth: Tensor, faces: Tensor, face_index: Tensor, image_size: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """For the covered pixels of a :func:`zbuffer` result: their flat indices ``covered [M]`` (ascending),
    perspective-correct barycentrics ``[M,3]`` and depth ``[M]``, as the per-pixel pass computes them (no gradient)."""
    pixels, depth = pixels.detach().contiguous(), depth.detach().contiguous()
    faces = faces.to(torch.int32).contiguous()
    covered = torch.nonzero(face_index >= 0).squeeze(1).to(torch.int32)
    a = _ShadeArgs()
    a.B, a.N = pixels.shape[:2]
    a.H, a.W = image_size
    a.F, a.covered_count, a.threads = faces.shape[0], covered.numel(), torch.get_num_threads()
    a.covered, a.face_index, a.faces, a.pixels, a.depth = (_ptr(t) for t in (covered, face_index, faces, pixels, depth))
    weights, out_depth = pixels.new_empty(covered.numel(), 3), pixels.new_empty(covered.numel())
    _fn("nf_barycentrics", pixels.dtype)(ctypes.byref(a), _P(weights.data_ptr()), _P(out_depth.data_ptr()))
    return covered.long(), weights, out_depth


@lru_cache(maxsize=None)
def _basis_tables(bands: int) -> dict[str, Any]:
    """Monomial tables of :mod:`nextface_core.shading` laid out for the kernel.

    Rows: the even block then the odd block (each ordered as ``_monomial_tables``);
    ``gen`` (row, parent, axis) in degree order; ``deriv``/``deriv_power`` per row and
    axis; ``conv [rows, bands²]`` float64, the basis on these rows.
    """
    exps, conv, _ = _monomial_tables(bands)
    offset = (0, len(exps[0]))
    row_of = {(p, e): offset[p] + i for p in (0, 1) for i, e in enumerate(exps[p])}
    rows = len(exps[0]) + len(exps[1])
    gen = []
    for p in (0, 1):
        for (a, b, c) in exps[p]:
            if a + b + c == 0:
                continue
            parent, axis = ((a, b, 0), 2) if c else (((a - 1, b, 0), 0) if a else ((0, b - 1, 0), 1))
            gen.append((a + b + c, row_of[(p, (a, b, c))], row_of[(1 - p, parent)], axis))
    gen.sort()
    deriv = torch.full((rows, 3), -1, dtype=torch.int32)
    power = torch.zeros((rows, 3), dtype=torch.int32)
    for p in (0, 1):
        for e in exps[p]:
            for axis in range(3):
                if e[axis]:
                    lower = list(e)
                    lower[axis] -= 1
                    deriv[row_of[(p, e)], axis] = row_of[(1 - p, tuple(lower))]
                    power[row_of[(p, e)], axis] = e[axis]
    top = bands - 1
    return {
        "rows": rows,
        "gen": torch.tensor([g[1:] for g in gen] or [[0, 0, 0]], dtype=torch.int32),
        "deriv": deriv,
        "power": power,
        "conv": torch.cat([conv[0], conv[1]], 0),
        "band_rows": [_block_size(l % 2, l) for l in range(bands)],
        "band_start": [offset[l % 2] for l in range(bands)],
        "diffuse_rows": [_block_size(0, top - top % 2), _block_size(1, 1) if bands > 1 else 0],
    }


@lru_cache(maxsize=None)
def _light_tables(bands: int, dtype: torch.dtype) -> dict[str, Tensor]:
    """The SH basis on the monomial rows ``conv [rows, bands²]`` and the Lambert kernel ``[bands]`` in ``dtype``."""
    return {"conv": _basis_tables(bands)["conv"].to(dtype).contiguous(),
            "lambert": torch.tensor(lambert_kernel(bands), dtype=dtype)}


_MODES = {RenderMode.FULL: 0, RenderMode.ALBEDO: 1, RenderMode.LIGHTING: 2}


def _shade_args(static: dict[str, Any], tensors: dict[str, Tensor | None]) -> _ShadeArgs:
    a = _ShadeArgs()
    for name in ("B", "N", "H", "W", "F", "mode", "bands", "covered_count", "threads"):
        setattr(a, name, static[name])
    tables = static["tables"]
    a.rows = tables["rows"]
    a.diffuse_rows[:] = tables["diffuse_rows"]
    a.band_rows[: static["bands"]] = tables["band_rows"]
    a.band_start[: static["bands"]] = tables["band_start"]
    for name in ("covered", "face_index", "faces", "pixels", "depth", "positions", "normals", "uv", "sh", "conv",
                 "lambert", "image", "depth_image", "grad_image", "grad_pixels", "grad_depth", "grad_positions",
                 "grad_normals", "grad_sh", "surfaces"):
        setattr(a, name, _ptr(tensors.get(name)))
    a.gen, a.deriv, a.deriv_power = (_ptr(tables[k]) for k in ("gen", "deriv", "power"))
    for k, (tex, grad) in enumerate(zip(tensors["textures"], tensors.get("grad_textures") or (None,) * 3)):
        a.tex[k] = _Texture(_ptr(tex), _ptr(grad), *tex.shape)
    shadow = tensors.get("shadow")
    if shadow is not None:
        a.shadow = _Texture(_ptr(shadow), _ptr(tensors.get("grad_shadow")), *shadow.shape)
    return a


class _ShadePixels(torch.autograd.Function):
    """Covered pixels → shaded image ``[B,H,W,4]`` (rgb, coverage 1) and depth image (no gradient).
    ``shadow``: factor texture ``[B or 1,T_s,T_s,6]`` multiplying the sampled diffuse and
    specular values, or None."""

    @staticmethod
    def forward(ctx, pixels, depth, positions, normals, diffuse, specular, roughness, sh, shadow, static):  # type: ignore[override]
        b, h, w = static["B"], static["H"], static["W"]
        image = pixels.new_zeros(b, h, w, 4)
        depth_image = pixels.new_zeros(b, h, w)
        # the backward reuses each pixel's barycentrics, attributes and texture lookups
        lib = _library()[0]
        size = (lib.nf_surface_bytes_f64 if pixels.dtype == torch.float64 else lib.nf_surface_bytes_f32)()
        surfaces = torch.empty(static["covered_count"] * size, dtype=torch.uint8) if any(ctx.needs_input_grad) else None
        tensors = dict(static["tensors"], pixels=pixels, depth=depth, positions=positions, normals=normals,
                       textures=(diffuse, specular, roughness), sh=sh, shadow=shadow, image=image,
                       depth_image=depth_image, surfaces=surfaces)
        _fn("nf_shade_forward", pixels.dtype)(ctypes.byref(_shade_args(static, tensors)))
        ctx.save_for_backward(pixels, depth, positions, normals, diffuse, specular, roughness, sh, shadow)
        ctx.surfaces = surfaces
        ctx.static = static
        ctx.mark_non_differentiable(depth_image)
        return image, depth_image

    @staticmethod
    def backward(ctx, grad_image, _grad_depth):  # type: ignore[override]
        pixels, depth, positions, normals, diffuse, specular, roughness, sh, shadow = ctx.saved_tensors
        static = ctx.static
        textures = (diffuse, specular, roughness)
        grads = {
            "grad_pixels": torch.zeros_like(pixels), "grad_depth": torch.zeros_like(depth),
            "grad_positions": torch.zeros_like(positions), "grad_normals": torch.zeros_like(normals),
            "grad_sh": torch.zeros_like(sh),
        }
        grad_textures = tuple(torch.zeros_like(t) if ctx.needs_input_grad[4 + k] else None for k, t in enumerate(textures))
        grad_shadow = torch.zeros_like(shadow) if shadow is not None and ctx.needs_input_grad[8] else None
        tensors = dict(static["tensors"], pixels=pixels, depth=depth, positions=positions, normals=normals,
                       textures=textures, sh=sh, shadow=shadow, grad_image=grad_image.contiguous(), surfaces=ctx.surfaces,
                       grad_textures=grad_textures, grad_shadow=grad_shadow, **grads)
        _fn("nf_shade_backward", pixels.dtype)(ctypes.byref(_shade_args(static, tensors)))
        return (grads["grad_pixels"], grads["grad_depth"], grads["grad_positions"], grads["grad_normals"],
                *grad_textures, grads["grad_sh"], grad_shadow, None)


class _Antialias(torch.autograd.Function):
    """Silhouette blending of ``values [B,H,W,C]``; gradients to the values and the screen positions."""

    @staticmethod
    def forward(ctx, values, pixels, static):  # type: ignore[override]
        values = values.contiguous()
        b, h, w = static["B"], static["H"], static["W"]
        out = torch.empty_like(values)
        capacity = 2 * b * h * w
        pairs = [torch.empty(capacity, dtype=torch.int32) for _ in range(3)]
        pair_t = values.new_empty(capacity)
        count = torch.zeros(1, dtype=torch.int64)
        a = _AntialiasArgs(b, static["N"], h, w, static["F"], values.shape[-1])
        a.face_index, a.faces, a.silhouette, a.depth_image = (_ptr(static[k]) for k in ("face_index", "faces", "silhouette", "depth_image"))
        a.pixels, a.values, a.out = _ptr(pixels), _ptr(values), _ptr(out)
        a.pair_inside, a.pair_outside, a.pair_edge = (_ptr(p) for p in pairs)
        a.pair_t, a.pair_count = _ptr(pair_t), _ptr(count)
        _fn("nf_antialias_forward", values.dtype)(ctypes.byref(a))
        n = int(count)
        ctx.pairs = [p[:n].clone() for p in pairs] + [pair_t[:n].clone(), count]
        ctx.save_for_backward(values, pixels)
        ctx.static = static
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        values, pixels = ctx.saved_tensors
        static = ctx.static
        b, h, w = static["B"], static["H"], static["W"]
        grad_values = torch.empty_like(values)
        grad_pixels = torch.zeros_like(pixels)
        a = _AntialiasArgs(b, static["N"], h, w, static["F"], values.shape[-1])
        a.face_index, a.faces, a.silhouette, a.depth_image = (_ptr(static[k]) for k in ("face_index", "faces", "silhouette", "depth_image"))
        a.pixels, a.values = _ptr(pixels), _ptr(values)
        a.pair_inside, a.pair_outside, a.pair_edge, a.pair_t, a.pair_count = (_ptr(p) for p in ctx.pairs)
        a.grad_out, a.grad_values, a.grad_pixels = _ptr(grad_out.contiguous()), _ptr(grad_values), _ptr(grad_pixels)
        _fn("nf_antialias_backward", values.dtype)(ctypes.byref(a))
        return grad_values, grad_pixels, None


def silhouette_bits(orientation: Tensor, neighbors: Tensor) -> Tensor:
    """:func:`nextface_core.raster.silhouette_edges` packed by the kernel: per image and face,
    bit i set when edge i (opposite vertex i) is a silhouette edge → ``[B·F]`` uint8."""
    orientation = orientation.contiguous()
    neighbors = neighbors.to(torch.int64).contiguous()
    bits = torch.empty(orientation.numel(), dtype=torch.uint8)
    _fn("nf_silhouettes", orientation.dtype)(
        _P(orientation.data_ptr()), _P(neighbors.data_ptr()), orientation.shape[0], orientation.shape[1], _P(bits.data_ptr())
    )
    return bits


def render(inputs: RenderInputs, settings: RenderSettings, neighbors: Tensor, shadow: Tensor | None = None) -> RenderOutput:
    """The whole ``vertex`` render on the compiled kernels (``neighbors`` from
    :func:`nextface_core.raster.face_neighbors`; ``shadow`` the factor texture ``[B or 1,T_s,T_s,6]``
    of :meth:`nextface_core.shadows.Shadows.factor_texture`, or None)."""
    dtype = inputs.vertices.dtype
    height, width = settings.image_size
    batch, n_verts = inputs.vertices.shape[:2]
    mode = settings.mode
    vertices = inputs.vertices
    with record_function("vertex.raster"):
        pixels = project(vertices, inputs.focal.to(dtype), inputs.principal_point.to(dtype)).contiguous()
        depth = vertices[..., 2].contiguous()
        faces = inputs.faces.to(torch.int32).contiguous()
        face_index, orientation = zbuffer(pixels, depth, faces, (height, width))
        covered = torch.nonzero(face_index >= 0).squeeze(1).to(torch.int32)
    with record_function("vertex.shade"):
        bands = _bands_of(inputs.sh)
        textures = [t.to(dtype).contiguous() for t in (inputs.diffuse, inputs.specular, inputs.roughness)]
        static = {
            "B": batch, "N": n_verts, "H": height, "W": width, "F": faces.shape[0], "mode": _MODES[mode],
            "bands": bands, "covered_count": int(covered.numel()), "threads": torch.get_num_threads(),
            "tables": _basis_tables(bands),
            "tensors": {"covered": covered, "face_index": face_index, "faces": faces,
                        "uv": inputs.uv.to(dtype).contiguous(), **_light_tables(bands, dtype)},
        }
        image, depth_image = _ShadePixels.apply(
            pixels, depth, vertices.contiguous(), inputs.normals.to(dtype).contiguous(), *textures, inputs.sh.to(dtype).contiguous(),
            None if shadow is None else shadow.to(dtype).contiguous(), static,
        )
    with record_function("vertex.antialias"):
        aa_static = {"B": batch, "N": n_verts, "H": height, "W": width, "F": faces.shape[0], "face_index": face_index,
                     "faces": faces, "silhouette": silhouette_bits(orientation, neighbors), "depth_image": depth_image}
        out = _Antialias.apply(image, pixels, aa_static)
    return RenderOutput(image=out[..., :3], mask=out[..., 3:])
