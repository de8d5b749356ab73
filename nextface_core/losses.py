"""Loss terms of the fit, registered through the ``nextface_register_losses`` hook.

A :class:`LossTerm` maps the :class:`LossContext` of one iteration to a scalar tensor; the
fit multiplies it by :meth:`LossTerm.weight` (from ``[weights]`` in the config) and skips
terms whose weight is 0 in the current stage. Third-party terms take their weight from
``[plugins.<name>] weight`` (and optionally ``stages``, a list of stage numbers).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import torch

from .params import SceneParameters
from .render import RenderOutput, composite
from .sh import sh_basis, sphere_directions


@dataclass
class LossContext:
    """What one iteration of stage ``stage`` gives the loss terms.

    ``landmarks [B,L,2]`` projected, ``landmark_targets [B,L,2]`` detected (pixels),
    ``landmark_weights [B,L]`` confidences (0 for missing points); ``image_scale [B]`` the
    longer image side, to make pixel errors resolution independent. ``render`` and
    ``images [B,H,W,3]`` (linear) with ``valid [B,H,W,1]`` (1 inside each image, 0 in padding)
    are set in stages 2 and 3, ``face_mask [B,H,W,1]`` (the face region, :mod:`.face_mask`;
    None: every pixel) with them. ``maps``/``maps_initial``: stage-3 textures by name
    (``diffuse``, ``specular``, ``roughness``, each ``[S,T,T,C]``) and their stage-2 values.
    ``progress``: how far the stage is, 0 at its first iteration and 1 at its last (for
    weights that change over a stage, :meth:`WeightedTerm.weight_at`).
    """

    stage: int
    params: SceneParameters
    landmarks: torch.Tensor
    landmark_targets: torch.Tensor
    landmark_weights: torch.Tensor
    image_scale: torch.Tensor
    render: RenderOutput | None = None
    images: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    face_mask: torch.Tensor | None = None
    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    maps_initial: dict[str, torch.Tensor] = field(default_factory=dict)
    progress: float = 0.0


@runtime_checkable
class LossTerm(Protocol):
    """A named loss; ``weight(config, stage)`` is 0 where the term is inactive. A term whose
    weight changes over a stage also has ``weight_at(config, stage, progress)`` (the fit calls
    it where it exists; ``progress`` as in :class:`LossContext`)."""

    name: str

    def weight(self, config: Any, stage: int) -> float: ...

    def __call__(self, ctx: LossContext) -> torch.Tensor: ...


@dataclass
class WeightedTerm:
    """A loss from a function, weighted by ``[weights] <key>`` in the listed stages.

    ``key`` may contain ``{stage}`` (e.g. ``landmarks_stage{stage}``). Where the config also
    has ``[weights] <key>_final`` for the stage, the weight moves linearly from ``<key>`` at
    the stage's first iteration to that at its last (:meth:`weight_at`).
    """

    name: str
    fn: Callable[[LossContext], torch.Tensor]
    key: str
    stages: tuple[int, ...]

    def weight(self, config: Any, stage: int) -> float:
        if stage not in self.stages:
            return 0.0
        return float(getattr(config.weights, self.key.format(stage=stage)))

    def weight_at(self, config: Any, stage: int, progress: float) -> float:
        """The weight ``progress`` (0…1) of the way through ``stage``."""
        start = self.weight(config, stage)
        final = getattr(config.weights, self.key.format(stage=stage) + "_final", None)
        if stage not in self.stages or final is None:
            return start
        return start + (float(final) - start) * progress

    def __call__(self, ctx: LossContext) -> torch.Tensor:
        return self.fn(ctx)


#: below this distance (in % of the image side) the landmark loss turns quadratic
LANDMARK_SMOOTHING = 0.1


def landmark_loss(ctx: LossContext) -> torch.Tensor:
    """Confidence-weighted mean distance between projected and detected landmarks, in % of
    the image's longer side (so weights do not depend on resolution).

    The distance is the Charbonnier form ``sqrt(d² + ε²) − ε``: linear (robust to a wrong
    landmark) far away, smooth near 0 so quasi-Newton steps converge.
    """
    diff = (ctx.landmarks - ctx.landmark_targets) / ctx.image_scale[:, None, None] * 100.0
    eps = LANDMARK_SMOOTHING
    dist = (diff.pow(2).sum(-1) + eps * eps).sqrt() - eps
    return (dist * ctx.landmark_weights).sum() / ctx.landmark_weights.sum().clamp_min(1e-8)


def photometric_loss(ctx: LossContext) -> torch.Tensor:
    """Mean absolute colour difference between the render in front of the photo
    (:func:`~nextface_core.render.composite`) and the photo, over the pixels the face covers
    (linear RGB), inside the face region when the context has one (eyes, mouth and hair left out)."""
    assert ctx.render is not None and ctx.images is not None and ctx.valid is not None
    mask = ctx.render.mask * ctx.valid
    if ctx.face_mask is not None:
        mask = mask * ctx.face_mask
    diff = (composite(ctx.render, ctx.images) - ctx.images).abs() * mask
    return diff.sum() / (3.0 * mask.sum().clamp_min(1.0))


def _prior(name: str) -> Callable[[LossContext], torch.Tensor]:
    def prior(ctx: LossContext) -> torch.Tensor:
        return getattr(ctx.params, name).pow(2).mean()

    prior.__doc__ = f"Mean squared {name} coefficient (a Gaussian prior in units of standard deviations)."
    return prior


def albedo_prior(ctx: LossContext) -> torch.Tensor:
    """Gaussian prior on the diffuse and specular albedo coefficients."""
    return ctx.params.diffuse.pow(2).mean() + ctx.params.specular.pow(2).mean()


#: the first SH band the light prior damps: bands 0–2 are what a Lambertian face shows best
LIGHT_PRIOR_FIRST_BAND = 3


def light_prior(ctx: LossContext) -> torch.Tensor:
    """Energy of the light's bands ``l ≥ 3``, weighted by ``l(l+1)``, relative to its ambient
    term: bands a face barely shows (the Lambert kernel removes odd bands above 1 and damps
    the even ones; only the specular lobe sees them) stay small instead of fitting noise, so
    the light relights other views."""
    sh = ctx.params.sh
    bands = int(round(sh.shape[1] ** 0.5))
    l = torch.arange(bands, device=sh.device, dtype=sh.dtype).repeat_interleave(torch.arange(bands, device=sh.device) * 2 + 1)
    weight = torch.where(l >= LIGHT_PRIOR_FIRST_BAND, l * (l + 1), torch.zeros_like(l))
    energy = (sh.pow(2) * weight[None, :, None]).sum((1, 2))
    return (energy / sh[:, 0].pow(2).sum(-1).clamp_min(1e-8)).mean()


def light_chroma(ctx: LossContext) -> torch.Tensor:
    """Energy of the colour of the light's bands ``l ≥ 1`` that differs from its ambient
    term's colour, relative to the ambient term. The bands that shade the nose and cheeks
    (1–2) in a colour of their own make the diffuse map take the opposite colour there
    (magenta and green blotches on real photos); one light colour for all directions is the
    common case, and a coloured light still fits where the photo insists."""
    sh = ctx.params.sh
    ambient = sh[:, :1]  # [B,1,3]
    unit = ambient / ambient.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    higher = sh[:, 1:]
    off = higher - (higher * unit).sum(-1, keepdim=True) * unit  # the part not along the ambient colour
    return (off.pow(2).sum((1, 2)) / ambient.pow(2).sum((1, 2)).clamp_min(1e-8)).mean()


#: directions on which :func:`light_negative` looks for negative radiance (a Fibonacci sphere)
NEGATIVE_LIGHT_DIRECTIONS = 512


@functools.lru_cache(maxsize=8)
def _sphere_basis(bands: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The SH basis ``[n, bands²]`` at ``n`` directions spread evenly over the sphere (a
    Fibonacci lattice); fixed, so evaluated once, not every iteration."""
    return sh_basis(sphere_directions(NEGATIVE_LIGHT_DIRECTIONS, torch.float64), bands).to(dtype=dtype, device=device)


def light_negative(ctx: LossContext) -> torch.Tensor:
    """Mean squared negative radiance of the light over the sphere, relative to its ambient
    term. A few SH bands fitted freely ring below zero between lobes (on the astronaut 17 % of
    the sphere, down to −0.57 against a peak of 1.43): no light emits that, a ray tracer must
    clamp it (so it renders the same scene differently), and the albedo absorbs the error."""
    sh = ctx.params.sh
    basis = _sphere_basis(int(round(sh.shape[1] ** 0.5)), sh.dtype, sh.device)
    negative = torch.einsum("nk,bkc->bnc", basis, sh).clamp(max=0.0)  # [B,n,3] radiance below 0
    return (negative.pow(2).mean((1, 2)) / sh[:, 0].pow(2).mean(-1).clamp_min(1e-8)).mean()


def _symmetry(map_name: str) -> Callable[[LossContext], torch.Tensor]:
    def symmetry(ctx: LossContext) -> torch.Tensor:
        t = ctx.maps[map_name]
        return (t - t.flip(2)).abs().mean()

    symmetry.__doc__ = f"The {map_name} map against its mirror image (the UV layout is left–right symmetric)."
    return symmetry


def _consistency(map_name: str) -> Callable[[LossContext], torch.Tensor]:
    def consistency(ctx: LossContext) -> torch.Tensor:
        return (ctx.maps[map_name] - ctx.maps_initial[map_name]).abs().mean()

    consistency.__doc__ = f"The {map_name} map against its statistical (stage-2) value."
    return consistency


#: the texture resolution whose texel pitch the smoothness terms are measured in
SMOOTHNESS_PITCH = 256


def _smoothness(map_name: str) -> Callable[[LossContext], torch.Tensor]:
    def smoothness(ctx: LossContext) -> torch.Tensor:
        t = ctx.maps[map_name]
        dy = (t[:, 1:] - t[:, :-1]).pow(2).mean()
        dx = (t[:, :, 1:] - t[:, :, :-1]).pow(2).mean()
        return (dx + dy) * (t.shape[1] / SMOOTHNESS_PITCH) ** 2

    smoothness.__doc__ = (
        f"Squared differences of neighbouring texels of the {map_name} map, per {SMOOTHNESS_PITCH}-texel pitch "
        "(the same weight means the same smoothness at any resolution)."
    )
    return smoothness


def standard_terms() -> list[WeightedTerm]:
    """The loss terms of the original method, as registered by the core plugin."""
    terms = [
        WeightedTerm("landmarks", landmark_loss, "landmarks_stage{stage}", (1, 2)),
        WeightedTerm("photometric", photometric_loss, "photometric", (2, 3)),
        WeightedTerm("shape_prior", _prior("shape"), "shape_prior", (1, 2)),
        WeightedTerm("expression_prior", _prior("expression"), "expression_prior", (1, 2)),
        WeightedTerm("albedo_prior", albedo_prior, "albedo_prior", (2,)),
        WeightedTerm("light_prior", light_prior, "light_prior", (2,)),
        WeightedTerm("light_negative", light_negative, "light_negative", (2,)),
        WeightedTerm("light_chroma", light_chroma, "light_chroma", (2,)),
    ]
    for map_name in ("diffuse", "specular", "roughness"):
        terms += [
            WeightedTerm(f"{map_name}_symmetry", _symmetry(map_name), f"{map_name}_symmetry", (3,)),
            WeightedTerm(f"{map_name}_consistency", _consistency(map_name), f"{map_name}_consistency", (3,)),
            WeightedTerm(f"{map_name}_smoothness", _smoothness(map_name), f"{map_name}_smoothness", (3,)),
        ]
    return terms
