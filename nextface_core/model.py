"""The morphable-model data contract: pure tensors that loaders produce and the fit consumes.

Shapes: N vertices, F triangles, K_s shape, K_e expression and K_a albedo components.
Model space follows the Basel convention: millimetres, y up, +z out of the face.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch


@dataclass(frozen=True)
class LandmarkAssociation:
    """Where each landmark of one schema lies on the model.

    ``landmark_index [L]``: indices into the detector's schema (e.g. 0..67 for ibug68).
    ``vertex_index [L]``: the model vertex of each of those landmarks; or, with
    ``barycentric [L,3]``, ``vertex_index [L,3]`` the corners of the triangle each landmark
    lies in and ``barycentric`` its weights on them (a surface point, e.g. a calibrated dense
    landmark, :mod:`nextface_core.calibration`).
    ``contour``: for dynamic jaw-contour matching, ``{landmark index: candidate vertices [M]}``;
    per pose the fit picks the candidate on the silhouette. Empty when not used.
    ``weight [L]``: per-landmark weights in (0, 1] multiplying the detector's confidences
    (None: all 1); ``contour_weight`` the weight of every contour landmark.
    """

    landmark_index: torch.Tensor
    vertex_index: torch.Tensor
    contour: dict[int, torch.Tensor] = field(default_factory=dict)
    barycentric: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    contour_weight: float = 1.0

    def __post_init__(self) -> None:
        n = self.landmark_index.shape[0]
        want = (n,) if self.barycentric is None else (n, 3)
        if tuple(self.vertex_index.shape) != want:
            raise ValueError(f"LandmarkAssociation.vertex_index has shape {tuple(self.vertex_index.shape)}, expected {want}")
        if self.barycentric is not None and tuple(self.barycentric.shape) != (n, 3):
            raise ValueError(f"LandmarkAssociation.barycentric has shape {tuple(self.barycentric.shape)}, expected ({n}, 3)")
        if self.weight is not None and tuple(self.weight.shape) != (n,):
            raise ValueError(f"LandmarkAssociation.weight has shape {tuple(self.weight.shape)}, expected ({n},)")

    def points(self, rows: torch.Tensor) -> torch.Tensor:
        """The landmarks' fixed points from per-vertex rows ``[..., N, C]`` → ``[..., L, C]``
        (vertices of a batch ``[B,N,3]``, a basis ``[K,N,3]``, a mean ``[N,3]``)."""
        if self.barycentric is None:
            return rows[..., self.vertex_index, :]
        corners = rows[..., self.vertex_index, :]  # [..., L, 3, C]
        return (corners * self.barycentric.to(rows.dtype)[..., None]).sum(-2)

    def to(self, device: torch.device | str) -> "LandmarkAssociation":
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return LandmarkAssociation(
            self.landmark_index.to(device),
            self.vertex_index.to(device),
            {k: v.to(device) for k, v in self.contour.items()},
            move(self.barycentric),
            move(self.weight),
            self.contour_weight,
        )


@dataclass(frozen=True)
class MorphableModel:
    """A linear morphable model of shape, expression and reflectance.

    Geometry:    ``shape_mean [N,3]``, ``shape_basis [K_s,N,3]``, ``shape_var [K_s]``,
                 ``expression_basis [K_e,N,3]``, ``expression_var [K_e]``.
    Reflectance: ``diffuse_mean [N,3]``, ``diffuse_basis [K_a,N,3]``, ``diffuse_var [K_a]``,
                 ``specular_mean [N,3]``, ``specular_basis [K_a,N,3]``, ``specular_var [K_a]``
                 (linear RGB in [0, 1]).
    Topology:    ``faces [F,3]`` int64 (counter-clockwise seen from outside), ``uv [N,2]`` in
                 [0,1] (u → texture column, v → texture row, origin at the top-left texel
                 corner) on a left–right mirror-symmetric layout.
    ``landmarks``: ``{schema: LandmarkAssociation}``; ``symmetry [N]``: the mirror vertex of
    each vertex, or None. Variances are of the unit-variance coefficients' scale: a sample is
    ``mean + sum_k c_k * sqrt(var_k) * basis_k`` with ``c ~ N(0, 1)``.
    """

    shape_mean: torch.Tensor
    shape_basis: torch.Tensor
    shape_var: torch.Tensor
    expression_basis: torch.Tensor
    expression_var: torch.Tensor
    diffuse_mean: torch.Tensor
    diffuse_basis: torch.Tensor
    diffuse_var: torch.Tensor
    specular_mean: torch.Tensor
    specular_basis: torch.Tensor
    specular_var: torch.Tensor
    faces: torch.Tensor
    uv: torch.Tensor
    landmarks: dict[str, LandmarkAssociation] = field(default_factory=dict)
    symmetry: torch.Tensor | None = None
    name: str = "model"
    units: str = "mm"

    def __post_init__(self) -> None:
        n = self.shape_mean.shape[0]
        expect = {
            "shape_mean": (n, 3),
            "diffuse_mean": (n, 3),
            "specular_mean": (n, 3),
            "uv": (n, 2),
        }
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"MorphableModel.{name} has shape {got}, expected {shape}")
        for basis, var in (
            ("shape_basis", "shape_var"),
            ("expression_basis", "expression_var"),
            ("diffuse_basis", "diffuse_var"),
            ("specular_basis", "specular_var"),
        ):
            b, v = getattr(self, basis), getattr(self, var)
            if b.ndim != 3 or b.shape[1:] != (n, 3) or v.shape != (b.shape[0],):
                raise ValueError(
                    f"MorphableModel.{basis} {tuple(b.shape)} / {var} {tuple(v.shape)} do not match [K,{n},3] / [K]"
                )
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"MorphableModel.faces has shape {tuple(self.faces.shape)}, expected [F,3]")
        if self.specular_basis.shape[0] != self.diffuse_basis.shape[0]:
            raise ValueError(
                f"MorphableModel.specular_basis has {self.specular_basis.shape[0]} components and diffuse_basis "
                f"{self.diffuse_basis.shape[0]}; both must have K_a components"
            )
        if self.symmetry is not None and tuple(self.symmetry.shape) != (n,):
            raise ValueError(f"MorphableModel.symmetry has shape {tuple(self.symmetry.shape)}, expected ({n},)")

    @property
    def n_vertices(self) -> int:
        return self.shape_mean.shape[0]

    @property
    def n_faces(self) -> int:
        return self.faces.shape[0]

    @property
    def n_shape(self) -> int:
        return self.shape_basis.shape[0]

    @property
    def n_expression(self) -> int:
        return self.expression_basis.shape[0]

    @property
    def n_albedo(self) -> int:
        return self.diffuse_basis.shape[0]

    @property
    def device(self) -> torch.device:
        return self.shape_mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.shape_mean.dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "MorphableModel":
        """A copy on ``device`` with floating tensors cast to ``dtype``; index tensors keep int64."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                cast = dtype if (dtype is not None and value.is_floating_point()) else None
                changes[f.name] = value.to(device=device, dtype=cast)
        changes["landmarks"] = {k: v.to(device or self.device) for k, v in self.landmarks.items()}
        return replace(self, **changes)

    def truncated(self, n_shape: int | None = None, n_expression: int | None = None, n_albedo: int | None = None) -> "MorphableModel":
        """Keep only the first components of each basis (None or 0 keeps all)."""
        def cut(t: torch.Tensor, k: int | None) -> torch.Tensor:
            return t[:k] if k else t

        return replace(
            self,
            shape_basis=cut(self.shape_basis, n_shape),
            shape_var=cut(self.shape_var, n_shape),
            expression_basis=cut(self.expression_basis, n_expression),
            expression_var=cut(self.expression_var, n_expression),
            diffuse_basis=cut(self.diffuse_basis, n_albedo),
            diffuse_var=cut(self.diffuse_var, n_albedo),
            specular_basis=cut(self.specular_basis, n_albedo),
            specular_var=cut(self.specular_var, n_albedo),
        )


def combine(mean: torch.Tensor, basis: torch.Tensor, var: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """``mean + sum_k coeffs[:, k] * sqrt(var_k) * basis_k``.

    ``mean [N,C]`` (or ``[L,C]`` for a gathered subset), ``basis [K,N,C]``, ``var [K]``,
    ``coeffs [B,K]`` in units of standard deviations → ``[B,N,C]``.
    """
    return mean + blend(coeffs * var.sqrt(), basis)


def blend(weights: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``sum_k weights[:, k] * basis_k``: ``weights [B,K]``, ``basis [K,N,C]`` → ``[B,N,C]``.

    A single matrix product over the flattened basis (shared by full meshes and the
    gathered landmark rows of stage 1).
    """
    k, n, c = basis.shape
    return (weights @ basis.reshape(k, n * c)).reshape(weights.shape[0], n, c)
