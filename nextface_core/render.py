"""The renderer contract: :class:`RenderInputs` and :class:`RenderSettings` in, :class:`RenderOutput` out.

This is all a renderer sees: the data of a batch (geometry, materials, light, camera) in
:class:`RenderInputs`, how to render it (image size, samples, seed, mode) in
:class:`RenderSettings`, as pytorch3d keeps ``RasterizationSettings`` beside its meshes.
Everything is in camera space (OpenCV: x right, y down, z forward) and linear RGB;
conventions of :mod:`nextface_core.camera` and :mod:`nextface_core.sh` apply.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


class RenderMode(str, enum.Enum):
    """What to render: the full shading, the diffuse albedo alone, or the lighting alone."""

    FULL = "full"
    ALBEDO = "albedo"
    LIGHTING = "lighting"


@dataclass
class RenderInputs:
    """One batch of B images to render.

    ``vertices [B,N,3]`` camera space; ``faces [F,3]`` int32, counter-clockwise when seen
    from the camera for front faces; ``normals [B,N,3]`` unit, camera space; ``uv [N,2]``
    (model convention: u → column, v → row from the top, in [0, 1]).
    Textures ``[B or 1, T, T, C]`` linear: ``diffuse`` C=3, ``specular`` C=3,
    ``roughness`` C=1 (a leading 1 means shared by all images).
    ``sh [B,bands²,3]`` light; ``focal [B]`` and ``principal_point [B,2]`` in pixels.
    Floating-point tensors share one dtype and device; how to render them is a
    :class:`RenderSettings`.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    normals: torch.Tensor
    uv: torch.Tensor
    diffuse: torch.Tensor
    specular: torch.Tensor
    roughness: torch.Tensor
    sh: torch.Tensor
    focal: torch.Tensor
    principal_point: torch.Tensor

    def __post_init__(self) -> None:
        b, n = self.vertices.shape[:2]
        checks = {
            "vertices": (self.vertices.shape, (b, n, 3)),
            "normals": (self.normals.shape, (b, n, 3)),
            "uv": (self.uv.shape, (n, 2)),
            "focal": (self.focal.shape, (b,)),
            "principal_point": (self.principal_point.shape, (b, 2)),
        }
        for name, (got, want) in checks.items():
            if tuple(got) != want:
                raise ValueError(f"RenderInputs.{name} has shape {tuple(got)}, expected {want}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"RenderInputs.faces has shape {tuple(self.faces.shape)}, expected [F,3]")
        if self.sh.ndim != 3 or self.sh.shape[0] != b or self.sh.shape[2] != 3:
            raise ValueError(f"RenderInputs.sh has shape {tuple(self.sh.shape)}, expected [{b},bands²,3]")
        for name, channels in (("diffuse", 3), ("specular", 3), ("roughness", 1)):
            t = getattr(self, name)
            if t.ndim != 4 or t.shape[0] not in (1, b) or t.shape[3] != channels:
                raise ValueError(f"RenderInputs.{name} has shape {tuple(t.shape)}, expected [1 or {b},T,T,{channels}]")

    @property
    def batch_size(self) -> int:
        return self.vertices.shape[0]


@dataclass(frozen=True)
class RenderSettings:
    """How to render a batch of :class:`RenderInputs`, checked when made.

    ``image_size`` (H, W) in pixels, each ≥ 1; ``samples`` per pixel (≥ 1) and ``seed``
    for stochastic renderers (a rasteriser ignores both); ``mode`` what to render
    (a :class:`RenderMode` or its value, stored as the enum). Change one with
    ``dataclasses.replace(settings, seed=...)``.
    """

    image_size: tuple[int, int]
    samples: int = 1
    seed: int = 0
    mode: RenderMode = RenderMode.FULL

    def __post_init__(self) -> None:
        size = tuple(int(s) for s in self.image_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"RenderSettings.image_size must be (H, W) with H, W ≥ 1, got {self.image_size}")
        if int(self.samples) < 1:
            raise ValueError(f"RenderSettings.samples must be ≥ 1, got {self.samples}")
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "samples", int(self.samples))
        object.__setattr__(self, "seed", int(self.seed))
        try:
            mode = RenderMode(self.mode)
        except ValueError:
            choices = ", ".join(m.value for m in RenderMode)
            raise ValueError(f"RenderSettings.mode must be one of {choices}, got {self.mode!r}") from None
        object.__setattr__(self, "mode", mode)


@dataclass
class RenderOutput:
    """``image [B,H,W,3]`` linear RGB and ``mask [B,H,W,1]`` coverage in [0, 1].

    The image is **premultiplied by coverage** (the face over black): a silhouette pixel the
    face half covers holds half its colour, as a ray tracer's pixel average and an antialiased
    rasteriser both give. Put it in front of anything with :func:`composite`."""

    image: torch.Tensor
    mask: torch.Tensor


def composite(render: RenderOutput, background: torch.Tensor) -> torch.Tensor:
    """The render in front of ``background [B,H,W,3]`` → ``[B,H,W,3]``: ``image + (1 − mask) ·
    background``. Against the photo as background, this is what the photometric loss and the
    PSNR compare: a silhouette pixel is the face's share of it plus the photo's rest, so the fit
    is not asked to make a partly covered pixel as bright as the photo with the face alone."""
    return render.image + (1.0 - render.mask) * background


@runtime_checkable
class Renderer(Protocol):
    """What a renderer factory returns. A renderer that caches anything between renders (the
    ``vertex`` renderer keeps the shadows' visibility of the last geometry) also has a
    ``reset()`` method, which the fit calls first so that its result depends on its inputs alone."""

    name: str

    def render(self, inputs: RenderInputs, settings: RenderSettings) -> RenderOutput:
        """Render the batch at ``settings.image_size`` → ``image [B,H,W,3]`` and ``mask [B,H,W,1]``
        of the inputs' dtype and device; differentiable w.r.t. vertices, textures, SH and focal."""
        ...


def reset_renderer(renderer: Renderer) -> None:
    """Call ``renderer.reset()`` where the renderer has one (see :class:`Renderer`): a fit or a
    track starts from a renderer that remembers nothing of earlier renders."""
    reset = getattr(renderer, "reset", None)
    if callable(reset):
        reset()
