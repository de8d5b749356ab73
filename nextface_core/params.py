"""Scene parameters: everything the fit optimises, for a batch of B images.

Identity tensors (shape, albedo coefficients, per-texel maps) have a leading dimension
S = 1 when the identity is shared by all images (several photos of one person), else
S = B. Per-image tensors always have B rows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

#: the identity's tensors (S rows); every other tensor has one row per image
IDENTITY_FIELDS = ("shape", "diffuse", "specular", "specular_log_scale", "diffuse_map", "specular_map", "roughness_map")


@dataclass
class SceneParameters:
    """``shape [S,K_s]``, ``diffuse [S,K_a]``, ``specular [S,K_a]`` (coefficients in standard
    deviations); ``expression [B,K_e]``; ``rotation [B,3]`` axis-angle radians;
    ``translation [B,3]`` camera space (model units); ``focal [B]`` pixels;
    ``sh [B,bands²,3]`` light; ``specular_log_scale [S,1]`` the log of a factor on the
    statistical specular albedo (0 when not given: the model's own level); stage-3 maps
    ``diffuse_map [S,T,T,3]``, ``specular_map [S,T,T,3]``, ``roughness_map [S,T,T,1]``
    (None before stage 3).

    The specular scale exists because a uniform change of the specular level is far outside
    the span of a statistical specular model (on the synthetic model, 0.8 × its mean needs
    coefficients of ±10–25 standard deviations), yet it is what the light trades against: with
    the level held at the model's, the fitted light takes up the difference (reflectance benchmark,
    module :mod:`nextface_core.synthetic.reflectance`).
    """

    shape: torch.Tensor
    expression: torch.Tensor
    diffuse: torch.Tensor
    specular: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    focal: torch.Tensor
    sh: torch.Tensor
    specular_log_scale: torch.Tensor | None = None
    diffuse_map: torch.Tensor | None = None
    specular_map: torch.Tensor | None = None
    roughness_map: torch.Tensor | None = None

    def __post_init__(self) -> None:
        b, s = self.batch_size, self.shape.shape[0]
        if s not in (1, b):
            raise ValueError(f"identity tensors have {s} rows; expected 1 (shared) or {b}")
        if self.specular_log_scale is None:
            self.specular_log_scale = self.shape.new_zeros(s, 1)
        for name in IDENTITY_FIELDS[1:4]:
            if getattr(self, name).shape[0] != s:
                raise ValueError(f"SceneParameters.{name} has {getattr(self, name).shape[0]} rows, expected {s}")
        for name in ("rotation", "translation", "focal", "sh"):
            if getattr(self, name).shape[0] != b:
                raise ValueError(f"SceneParameters.{name} has {getattr(self, name).shape[0]} rows, expected {b}")

    @property
    def batch_size(self) -> int:
        return self.expression.shape[0]

    @property
    def shared_identity(self) -> bool:
        return self.shape.shape[0] == 1 and self.batch_size > 1

    @classmethod
    def neutral(
        cls,
        batch_size: int,
        n_shape: int,
        n_expression: int,
        n_albedo: int,
        bands: int,
        focal: torch.Tensor,
        distance: float,
        shared_identity: bool = False,
        ambient: float = 0.5,
    ) -> "SceneParameters":
        """Mean face, frontal, ``distance`` in front of the camera, under ambient light.

        ``focal [B]`` pixels; the constant SH term is set so the irradiance is ``ambient * π``
        (a white Lambertian surface then reflects ``ambient``).
        """
        b, s = batch_size, (1 if shared_identity else batch_size)
        dev, dt = focal.device, focal.dtype
        sh = torch.zeros(b, bands * bands, 3, device=dev, dtype=dt)
        sh[:, 0, :] = ambient * 2.0 * (torch.pi**0.5)  # E = π · c0 · Y00 · ... = ambient · π
        translation = torch.zeros(b, 3, device=dev, dtype=dt)
        translation[:, 2] = distance
        return cls(
            shape=torch.zeros(s, n_shape, device=dev, dtype=dt),
            expression=torch.zeros(b, n_expression, device=dev, dtype=dt),
            diffuse=torch.zeros(s, n_albedo, device=dev, dtype=dt),
            specular=torch.zeros(s, n_albedo, device=dev, dtype=dt),
            rotation=torch.zeros(b, 3, device=dev, dtype=dt),
            translation=translation,
            focal=focal.clone(),
            sh=sh,
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """The non-None tensors by name (for optimisers, saving and checkpoints)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def with_first_identity(self) -> "SceneParameters":
        """All images, sharing image 0's identity (its identity rows, S = 1)."""
        return replace(self, **{n: getattr(self, n)[:1] for n in IDENTITY_FIELDS if getattr(self, n) is not None})

    def image(self, index: int) -> "SceneParameters":
        """Image ``index`` alone (a batch of one); its own identity rows, so not for a shared identity."""
        if self.shared_identity:
            raise ValueError("a shared identity couples the images; it cannot be split into single images")
        return replace(self, **{k: v[index : index + 1] for k, v in self.tensors().items()})

    @classmethod
    def cat(cls, parts: "list[SceneParameters]") -> "SceneParameters":
        """The batch of ``parts`` (each with its own identity rows), in order: inverse of :meth:`image`."""
        first = parts[0].tensors()
        return replace(parts[0], **{k: torch.cat([p.tensors()[k] for p in parts]) for k in first})

    def to(self, device: torch.device | str) -> "SceneParameters":
        """A copy with every tensor on ``device``."""
        return replace(self, **{k: v.to(device) for k, v in self.tensors().items()})

    def detached(self) -> "SceneParameters":
        """A copy with every tensor detached and cloned."""
        return replace(self, **{k: v.detach().clone() for k, v in self.tensors().items()})
