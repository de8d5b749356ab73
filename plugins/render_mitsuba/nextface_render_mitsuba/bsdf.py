"""The NextFace shading model (:mod:`nextface_core.shading`) as a Mitsuba 3 BSDF, written in Python.

For a viewer direction ``v`` (Mitsuba's ``si.wi``) and a light direction ``ω`` (``wo``), both in
the local shading frame (normal = +z), the BSDF times the cosine is::

    f(v, ω) cos θ_ω = ρ_d cos θ_ω / π  +  ρ_s · (s + 1) / (2π) · max(0, ω·R)^s,   R = mirror of v,
    s = 2 / r² − 2

i.e. a Lambertian lobe plus the normalised Phong lobe of exponent ``s`` around the mirror
direction that the core's ``S(R, r)`` stands for (the core keeps only that lobe's SH
attenuation ``exp(−l²/2s)``, a large-``s`` approximation of it), with no Fresnel, masking or
extra cosine, so the lobe reflects ``ρ_s`` of the light it sees. Differences from the core:
the ray tracer sees shadows and self-occlusion, the lobe is cut at the surface's horizon
(light from below the tangent plane cannot arrive), ``r`` is clamped to
[:data:`MIN_ROUGHNESS`, :data:`MAX_ROUGHNESS`] (``r = 0``, a mirror, would be a delta lobe) and
for very rough surfaces (``s`` near 0) a real Phong lobe keeps more of bands 1–2 than
``exp(−l²/2s)`` does. The plugin is registered as ``nextface_bsdf`` for each variant used.
"""

from __future__ import annotations

import math
from typing import Any

PLUGIN_NAME = "nextface_bsdf"
MIN_ROUGHNESS = 0.05  # Phong exponent ≈ 798
MAX_ROUGHNESS = 0.98  # Phong exponent ≈ 0.08
_registered: set[str] = set()


def register(mi: Any, dr: Any) -> None:
    """Register :data:`PLUGIN_NAME` with Mitsuba for the active variant (once per variant)."""
    variant = mi.variant()
    if variant in _registered:
        return

    class NextFaceBSDF(mi.BSDF):
        """Lambertian + normalised Phong lobe around the mirror direction, all three maps from textures."""

        def __init__(self, props: Any) -> None:
            mi.BSDF.__init__(self, props)
            self.diffuse = props["diffuse"]
            self.specular = props["specular"]
            self.roughness = props["roughness"]
            diffuse_flags = mi.BSDFFlags.DiffuseReflection | mi.BSDFFlags.FrontSide
            glossy_flags = mi.BSDFFlags.GlossyReflection | mi.BSDFFlags.FrontSide
            self.m_components = [diffuse_flags, glossy_flags]
            self.m_flags = diffuse_flags | glossy_flags

        def _maps(self, si: Any, active: Any) -> tuple[Any, Any, Any, Any]:
            rho_d = self.diffuse.eval(si, active)
            rho_s = self.specular.eval(si, active)
            r = dr.clip(self.roughness.eval_1(si, active), MIN_ROUGHNESS, MAX_ROUGHNESS)
            exponent = 2.0 / (r * r) - 2.0
            weight_d, weight_s = dr.mean(rho_d), dr.mean(rho_s)
            # probability of sampling the glossy lobe: its share of the reflectance
            p_glossy = dr.select(weight_d + weight_s > 0.0, weight_s / dr.maximum(weight_d + weight_s, 1e-8), 0.5)
            return rho_d, rho_s, exponent, p_glossy

        @staticmethod
        def _mirror(wi: Any) -> Any:
            return mi.Vector3f(-wi.x, -wi.y, wi.z)

        def _lobes(self, ctx: Any, si: Any, wo: Any, active: Any, maps: tuple | None = None) -> tuple[Any, Any]:
            """(f·cos θ_o, pdf) of direction ``wo``; ``maps`` reuses :meth:`_maps` when the caller has them."""
            rho_d, rho_s, exponent, p_glossy = maps if maps is not None else self._maps(si, active)
            use_d = ctx.is_enabled(mi.BSDFFlags.DiffuseReflection, 0)
            use_s = ctx.is_enabled(mi.BSDFFlags.GlossyReflection, 1)
            cos_o = mi.Frame3f.cos_theta(wo)
            cos_a = dr.maximum(dr.dot(wo, self._mirror(si.wi)), 0.0)
            phong = (exponent + 1.0) * (0.5 / math.pi) * dr.power(cos_a, exponent)
            lambert = cos_o / math.pi
            valid = active & (mi.Frame3f.cos_theta(si.wi) > 0.0) & (cos_o > 0.0)
            value = rho_d * lambert * (1.0 if use_d else 0.0) + rho_s * phong * (1.0 if use_s else 0.0)
            if use_d and use_s:
                pdf = p_glossy * phong + (1.0 - p_glossy) * lambert
            else:
                pdf = phong if use_s else lambert
            return dr.select(valid, value, 0.0), dr.select(valid, pdf, 0.0)

        def sample(self, ctx: Any, si: Any, sample1: Any, sample2: Any, active: Any = True) -> tuple[Any, Any]:
            maps = self._maps(si, active)
            _, _, exponent, p_glossy = maps
            use_d = ctx.is_enabled(mi.BSDFFlags.DiffuseReflection, 0)
            use_s = ctx.is_enabled(mi.BSDFFlags.GlossyReflection, 1)
            if use_d and use_s:
                pick_glossy = sample1 < p_glossy
            else:
                pick_glossy = mi.Bool(use_s)
            cos_a = dr.power(sample2.x, 1.0 / (exponent + 1.0))
            sin_a = dr.safe_sqrt(1.0 - cos_a * cos_a)
            sin_p, cos_p = dr.sincos(2.0 * math.pi * sample2.y)
            around_mirror = mi.Frame3f(self._mirror(si.wi)).to_world(mi.Vector3f(sin_a * cos_p, sin_a * sin_p, cos_a))
            wo = dr.select(pick_glossy, around_mirror, mi.warp.square_to_cosine_hemisphere(sample2))
            value, pdf = self._lobes(ctx, si, wo, active, maps)
            bs = dr.zeros(mi.BSDFSample3f)
            bs.wo = wo
            bs.pdf = pdf
            bs.eta = 1.0
            bs.sampled_type = dr.select(pick_glossy, mi.UInt32(+mi.BSDFFlags.GlossyReflection), mi.UInt32(+mi.BSDFFlags.DiffuseReflection))
            bs.sampled_component = dr.select(pick_glossy, mi.UInt32(1), mi.UInt32(0))
            ok = active & (pdf > 0.0) & (use_d or use_s)
            return bs, dr.select(ok, value / dr.maximum(pdf, 1e-12), 0.0)

        def eval(self, ctx: Any, si: Any, wo: Any, active: Any = True) -> Any:
            return self._lobes(ctx, si, wo, active)[0]

        def pdf(self, ctx: Any, si: Any, wo: Any, active: Any = True) -> Any:
            return self._lobes(ctx, si, wo, active)[1]

        def eval_pdf(self, ctx: Any, si: Any, wo: Any, active: Any = True) -> tuple[Any, Any]:
            return self._lobes(ctx, si, wo, active)

        def eval_diffuse_reflectance(self, si: Any, active: Any = True) -> Any:
            return self.diffuse.eval(si, active)

        def traverse(self, callback: Any) -> None:
            callback.put("diffuse", self.diffuse, mi.ParamFlags.Differentiable)
            callback.put("specular", self.specular, mi.ParamFlags.Differentiable)
            callback.put("roughness", self.roughness, mi.ParamFlags.Differentiable)

        def to_string(self) -> str:
            return "NextFaceBSDF[Lambert + normalised Phong lobe around the mirror direction]"

    mi.register_bsdf(PLUGIN_NAME, lambda props: NextFaceBSDF(props))
    _registered.add(variant)
