"""``nextface replay``: a turntable animation of a fit result, rendered with any renderer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .camera import model_to_camera
from .color import srgb_to_linear
from .config import load_config
from .errors import InputError, UsageError
from .files import atomic_path
from .install import extra_command
from .obj import read_obj
from .plugins import PluginRegistry
from .render import RenderInputs, RenderSettings


def _texture(path: Path, channels: int) -> torch.Tensor:
    if not path.exists():
        raise InputError(f"map {path} does not exist", "pass a result folder written by 'nextface fit'")
    img = np.asarray(Image.open(path).convert("RGB" if channels == 3 else "L"), dtype=np.float32) / 255.0
    t = torch.from_numpy(img).reshape(img.shape[0], img.shape[1], channels)[None]
    return srgb_to_linear(t) if channels == 3 else t


def turntable(result: str | Path, out: str | Path | None = None, frames: int = 36, renderer: str | None = None,
              size: int = 256) -> Path:
    """Render ``frames`` views of the mesh in ``result`` turning about its vertical axis.

    ``result`` is a per-image folder of ``nextface fit`` (``params.npz`` and its mesh and maps,
    or those of the sibling ``identity/`` folder for a shared identity). Writes a GIF (or an
    MP4 when imageio-ffmpeg is installed) and returns its path.
    """
    folder = Path(result)
    params_path = folder / "params.npz"
    if not params_path.exists():
        raise InputError(f"{folder} holds no params.npz", "pass a per-image folder written by 'nextface fit'")
    mesh_folder = folder if (folder / "mesh.obj").exists() else folder.parent / "identity"
    mesh = read_obj(mesh_folder / "mesh.obj")
    with np.load(params_path, allow_pickle=False) as data:
        sh = torch.from_numpy(data["sh"]).float()[None]
    if frames < 1:
        raise UsageError(f"--frames {frames} must be at least 1", "pass --frames 36")
    out = Path(out) if out else folder / "turntable.gif"
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise UsageError(f"cannot write {out.name}: unknown animation format", "use a .gif or .mp4 file name")

    config = load_config(overrides={"run.renderer": renderer} if renderer else None)
    engine = PluginRegistry().create("renderer", config.run.renderer, config)
    verts = torch.from_numpy(mesh.vertices).float()
    centre = (verts.amax(0) + verts.amin(0)) / 2.0
    verts = (verts - centre)[None].expand(frames, -1, -1)
    normals = torch.from_numpy(mesh.normals).float()[None].expand(frames, -1, -1)
    angles = torch.linspace(0.0, 2.0 * math.pi, frames + 1)[:-1]
    rotation = torch.stack([torch.zeros_like(angles), angles, torch.zeros_like(angles)], dim=-1)
    extent = float((mesh.vertices.max(0) - mesh.vertices.min(0))[:2].max())
    f = torch.full((frames,), float(size) * 2.0)
    translation = torch.tensor([0.0, 0.0, float(f[0]) * extent / (0.7 * size)]).expand(frames, 3)
    zero = torch.zeros(frames, 3)
    inputs = RenderInputs(
        vertices=model_to_camera(verts, rotation, translation),
        faces=torch.from_numpy(mesh.faces).to(torch.int32),
        normals=model_to_camera(normals, rotation, zero),
        uv=torch.from_numpy(mesh.uv).float(),
        diffuse=_texture(mesh_folder / "diffuse.png", 3),
        specular=_texture(mesh_folder / "specular.png", 3),
        roughness=_texture(mesh_folder / "roughness.png", 1),
        sh=sh.expand(frames, -1, -1),
        focal=f,
        principal_point=torch.full((frames, 2), size / 2.0),
    )
    settings = RenderSettings((size, size), config.render.final_samples, config.run.seed)
    with torch.no_grad():
        rendered = engine.render(inputs, settings)
    from .fitting.outputs import to_uint8

    images = [Image.fromarray(to_uint8(rendered.image[i])) for i in range(frames)]
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".gif":
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
        else:
            try:
                import imageio.v2 as imageio
                import imageio_ffmpeg  # noqa: F401
            except ImportError:
                raise UsageError("writing MP4 needs imageio-ffmpeg", f"{extra_command('video')}, or use .gif") from None
            imageio.mimwrite(tmp, [np.asarray(i) for i in images], fps=12, format="FFMPEG")
    return out
