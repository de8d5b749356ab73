"""Stage 3: per-texel diffuse, specular and roughness maps, the geometry and light fixed.

The maps are not free per-texel tensors: free texels let the specular and roughness maps
explain diffuse detail (a darker specular is as good as a darker diffuse to a single
view), and their step sizes and regulariser strengths change with the texture resolution.
:class:`MapParameters` instead composes each ``T × T`` map from a few free grids:

- **diffuse** ``[S,T,T,3]`` = the stage-2 statistical albedo + a pyramid of residuals at
  ``T, T/2, T/4, …`` (``[stage3] pyramid_levels``), each bilinearly upsampled: coarse
  levels move broad regions quickly, fine levels carry detail, whatever ``T`` is. Levels
  finer than about a pixel of the photo are left out (:func:`~nextface_core.footprint.texel_footprint`),
  so the cost and the result do not grow with ``T`` beyond what the photo resolves;
- **specular** = the stage-2 statistical specular + a residual on a coarse grid of
  ``[stage3] specular_resolution`` texels a side; achromatic (one channel repeated) unless
  ``specular_color``; it can only vary smoothly, so detail has to go to the diffuse map;
- **roughness** = ``texture.initial_roughness`` + a residual on a ``roughness_resolution``
  grid, kept inside ``[roughness_min, roughness_max]`` — a lobe rougher than that is nearly
  the mean radiance and would imitate a diffuse term.

The regularisers (:mod:`nextface_core.losses`) see the composed maps; their smoothness term
is normalised to the texel pitch of a 256² map, so weights mean the same at any ``T``.

**Footprint filter** (``[stage3] footprint_filter``, :mod:`nextface_core.footprint`). A
renderer looks the diffuse map up once per pixel, so where a pixel spans several texels only
those next to its sample get a gradient, and the L1 consistency and symmetry terms hold the
others at the stage-2 value: the map comes out as a lattice of dots. A camera pixel averages
the texture over its footprint; so the diffuse residual is blurred by the sigma of the
photo's footprint before it is rendered, and each pixel's error reaches every texel it
covers. The output is that filtered map: detail finer than a pixel is not in the
photo, and a sharper map would only alias when rendered again.

**Baking** (``[stage3] bake_steps``, :mod:`nextface_core.bake`). After the Adam iterations,
each step adds the unlit residual between the photo and the render to the diffuse map,
interpolated bilinearly between pixel centres: the detail the pyramid leaves out, without
the dots. Where the diffuse albedo would have to go below 0 (an iris under the coarse
specular), the specular map of that texel gives way. The renders use
``render.final_samples`` (a ray tracer's noise would be baked in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ...bake import refine_maps
from ...footprint import blur, footprint_sigma, texel_footprint
from ...params import SceneParameters
from ..optim import run_adam
from ..result import StageReport
from . import FitState


def _resize(grid: torch.Tensor, size: int) -> torch.Tensor:
    """``[S,C,r,r]`` → ``[S,C,size,size]`` bilinear (texel centres aligned as in the maps)."""
    return grid if grid.shape[-1] == size else F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)


def _upsample(grid: torch.Tensor, size: int) -> torch.Tensor:
    """``[S,C,r,r]`` → ``[S,size,size,C]``, the layout of the maps."""
    return _resize(grid, size).permute(0, 2, 3, 1)


@dataclass
class MapParameters:
    """The free grids of the three maps and their composition (module docstring).

    ``diffuse_levels`` ``[S,3,T/2^k,T/2^k]`` for k = 0…; ``specular_residual``
    ``[S,C_s,r_s,r_s]``; ``roughness_residual`` ``[S,1,r_r,r_r]``; the ``*_base`` maps are
    the stage-2 values ``[S,T,T,C]`` (fixed).
    """

    diffuse_base: torch.Tensor
    specular_base: torch.Tensor
    roughness_base: torch.Tensor
    diffuse_levels: list[torch.Tensor]
    specular_residual: torch.Tensor
    roughness_residual: torch.Tensor
    roughness_range: tuple[float, float]

    @classmethod
    def start(cls, diffuse: torch.Tensor, specular: torch.Tensor, roughness: torch.Tensor, levels: int,
              specular_resolution: int, roughness_resolution: int, specular_color: bool,
              roughness_range: tuple[float, float], footprint: float = 1.0) -> "MapParameters":
        """Zero residuals on top of the stage-2 maps ``[S,T,T,C]``. ``footprint``: texels per
        pixel of the photo; the pyramid's finest level has the pitch nearest one pixel
        (``T / 2^round(log2 footprint)``, 0.7–1.4 pixels), so no texel of the residual lies between pixel
        samples: finer levels come out as a lattice of dots (astronaut, 256 px, 3.7 texels a
        pixel), and a larger ``T`` adds no work. The detail finer than that is baked after
        the fit (:mod:`nextface_core.bake`)."""
        s, t = diffuse.shape[:2]
        if not specular_color:
            specular = specular.mean(-1, keepdim=True)
        skip = max(0, round(math.log2(max(footprint, 1.0))))
        sizes = [max(1, t >> k) for k in range(skip, skip + max(1, levels))]
        zeros = diffuse.new_zeros
        lo, hi = roughness_range
        return cls(
            diffuse_base=diffuse,
            specular_base=specular,
            roughness_base=roughness.clamp(lo, hi),
            diffuse_levels=[zeros(s, 3, n, n).requires_grad_(True) for n in sizes],
            specular_residual=zeros(s, specular.shape[-1], min(specular_resolution, t), min(specular_resolution, t)).requires_grad_(True),
            roughness_residual=zeros(s, 1, min(roughness_resolution, t), min(roughness_resolution, t)).requires_grad_(True),
            roughness_range=roughness_range,
        )

    def leaves(self) -> dict[str, torch.Tensor]:
        """The optimised tensors by name."""
        out = {f"diffuse_level{k}": g for k, g in enumerate(self.diffuse_levels)}
        out.update(specular=self.specular_residual, roughness=self.roughness_residual)
        return out

    def maps(self, sigma: float = 0.0) -> dict[str, torch.Tensor]:
        """The composed maps: ``diffuse [S,T,T,3]`` (its residual blurred by ``sigma`` texels,
        the footprint filter), ``specular [S,T,T,3]``, ``roughness [S,T,T,1]``."""
        t = self.diffuse_base.shape[1]
        residual = blur(sum(_resize(g, t) for g in self.diffuse_levels), sigma)  # [S,3,T,T]
        diffuse = self.diffuse_base + residual.permute(0, 2, 3, 1)
        specular = self.specular_base + _upsample(self.specular_residual, t)
        lo, hi = self.roughness_range
        roughness = (self.roughness_base + _upsample(self.roughness_residual, t)).clamp(lo, hi)
        return {
            "diffuse": diffuse.clamp(0.0, 1.0),
            "specular": specular.clamp(0.0, 1.0).expand(-1, -1, -1, 3),
            "roughness": roughness,
        }


class MapStage:
    """Stage 3: per-texel diffuse, specular and roughness maps, geometry and light fixed."""

    name = "maps"
    loss_stage = 3

    def run(self, state: FitState, params: SceneParameters) -> tuple[SceneParameters, StageReport]:
        cfg, scene, s3 = state.config, state.scene, state.config.stage3
        frozen = params.detached()
        with torch.no_grad():
            diffuse, specular = scene.albedo_textures(frozen)
            roughness = scene.constant_roughness(diffuse.shape[0], cfg.texture.initial_roughness)
            # the geometry is fixed in stage 3: build it once
            base = scene.render_inputs(frozen, diffuse, specular, roughness)
        footprint = texel_footprint(scene, frozen)
        sigma = footprint_sigma(footprint) if s3.footprint_filter else 0.0
        grids = MapParameters.start(
            diffuse, specular, roughness, s3.pyramid_levels, s3.specular_resolution, s3.roughness_resolution,
            s3.specular_color, (s3.roughness_min, s3.roughness_max), footprint,
        )
        with torch.no_grad():
            initial = grids.maps()
        ctx = state.context(self.loss_stage, frozen, maps_initial=initial)
        opt = torch.optim.Adam([{"params": [t], "lr": s3.learning_rate, "name": n} for n, t in grids.leaves().items()])

        def loss_of(it: int):
            maps = grids.maps(sigma)
            inputs = replace(base, diffuse=maps["diffuse"], specular=maps["specular"], roughness=maps["roughness"])
            settings = scene.render_settings(cfg.render.samples, cfg.run.seed + it)
            progress = it / max(s3.iterations - 1, 1)
            return state.total(replace(ctx, maps=maps, render=state.renderer.render(inputs, settings), progress=progress))

        report = run_adam(self.loss_stage, s3.iterations, s3.final_learning_rate, opt, loss_of, progress=state.progress)
        with torch.no_grad():
            maps = grids.maps(sigma)
            if s3.bake_steps:
                batch = state.batch
                inputs = replace(base, diffuse=maps["diffuse"], specular=maps["specular"], roughness=maps["roughness"])
                weights = batch.valid if state.face_mask is None else batch.valid * state.face_mask
                settings = scene.render_settings(cfg.render.final_samples, cfg.run.seed)
                maps["diffuse"], maps["specular"] = refine_maps(state.renderer, inputs, settings, batch.images, weights,
                                                                scene.texture, s3.bake_steps)
        fitted = replace(frozen, diffuse_map=maps["diffuse"], specular_map=maps["specular"].contiguous(),
                         roughness_map=maps["roughness"])
        return fitted, report
