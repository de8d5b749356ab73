"""The redner renderer: :func:`~.convert.scene_dicts` → pyredner scenes → :class:`RenderOutput`.

Only this module touches pyredner, and only when a renderer renders. Direct lighting only
(``max_bounces = 1``), as the core's shading model; the environment is not directly visible,
so the background is 0 and the alpha channel is the coverage mask.
"""

from __future__ import annotations

import sys
from typing import Any, List

import torch

from nextface_core.errors import BackendUnavailableError
from nextface_core.render import RenderInputs, RenderMode, RenderOutput

from .convert import scene_dicts

ALTERNATIVES = "vertex (rasteriser, any Python) or mitsuba (ray tracer, Python ≥ 3.8 incl. 3.11+)"


def import_pyredner() -> Any:
    """Import pyredner or raise :class:`BackendUnavailableError` naming the alternatives."""
    try:
        import pyredner
    except ImportError as exc:
        need = "" if sys.version_info < (3, 9) else f" (redner publishes wheels for Python ≤ 3.8; this is {sys.version.split()[0]})"
        raise BackendUnavailableError(
            f"renderer 'redner' needs the redner package, which is not importable{need}: {exc}",
            f"use --renderer {ALTERNATIVES}, or install nextface-render-redner[redner] in a Python 3.8 environment "
            "(see the plugin README)",
        ) from exc
    return pyredner


def build_scenes(pyredner: Any, dicts: List[dict]) -> List[Any]:
    """pyredner ``Scene`` objects from :func:`~.convert.scene_dicts` (one per image)."""
    scenes = []
    for d in dicts:
        cam, mesh, mat, env = d["camera"], d["mesh"], d["material"], d["envmap"]
        camera = pyredner.Camera(
            cam_to_world=cam["cam_to_world"],
            intrinsic_mat=cam["intrinsic_mat"].float().cpu(),
            resolution=cam["resolution"],
            clip_near=1e-3,
        )
        material = pyredner.Material(
            diffuse_reflectance=pyredner.Texture(mat["diffuse"].contiguous()),
            specular_reflectance=pyredner.Texture(mat["specular"].contiguous()),
            roughness=pyredner.Texture(mat["roughness"].contiguous()),
        )
        obj = pyredner.Object(
            vertices=mesh["vertices"].float().contiguous(), indices=mesh["indices"].contiguous(), material=material,
            uvs=mesh["uvs"].float().contiguous(), normals=mesh["normals"].float().contiguous(),
        )
        envmap = pyredner.EnvironmentMap(pyredner.Texture(env["values"].contiguous()), env_to_world=env["env_to_world"],
                                         directly_visible=False)
        scenes.append(pyredner.Scene(camera=camera, objects=[obj], envmap=envmap))
    return scenes


class RednerRenderer:
    """Differentiable redner path tracer behind the NextFace :class:`Renderer` protocol.

    ``envmap_height``: rows of the light's equirectangular map (columns = 2×); 32 resolves 9 SH bands.
    """

    name = "redner"

    def __init__(self, envmap_height: int = 32) -> None:
        self.envmap_height = envmap_height
        self.pyredner = import_pyredner()
        self.pyredner.set_print_timing(False)

    def render(self, inputs: RenderInputs) -> RenderOutput:
        """Render ``inputs`` → linear RGB ``[B,H,W,3]`` and coverage ``[B,H,W,1]``."""
        pyredner = self.pyredner
        pyredner.set_use_gpu(inputs.vertices.is_cuda)  # redner renders where the tensors live
        scenes = build_scenes(pyredner, scene_dicts(inputs, self.envmap_height))
        colour = pyredner.channels.diffuse_reflectance if inputs.mode == RenderMode.ALBEDO else pyredner.channels.radiance
        channels = [colour, pyredner.channels.alpha]
        images = pyredner.render_generic(
            scenes, channels=channels, max_bounces=1, num_samples=inputs.samples, seed=[inputs.seed] * len(scenes)
        )
        out = torch.stack(list(images)).to(device=inputs.vertices.device, dtype=inputs.vertices.dtype)
        return RenderOutput(image=out[..., :3], mask=out[..., 3:4])
