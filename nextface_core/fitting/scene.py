"""From scene parameters to geometry, landmarks and renderer inputs, for one model.

:class:`FaceScene` holds what is fixed during a fit (the model, the landmark rows gathered
once, the texture mapper, image geometry) and evaluates what changes (vertices, projected
landmarks, :class:`~nextface_core.render.RenderInputs`) and the
:class:`~nextface_core.render.RenderSettings` of its image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..camera import model_to_camera, project, rotate_normals
from ..mesh import vertex_normals
from ..model import LandmarkAssociation, MorphableModel, blend, combine
from ..params import SceneParameters
from ..render import RenderInputs, RenderMode, RenderSettings
from ..texture import TextureMapper


def expand_identity(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Rows of an identity tensor ``[S,...]`` for each of ``batch`` images (S is 1 or batch)."""
    return t.expand(batch, *t.shape[1:]) if t.shape[0] == 1 else t


@dataclass
class LandmarkRows:
    """The model rows of one landmark schema, gathered once so stage 1 never builds the mesh.

    ``fixed_landmarks [Lf]`` schema indices with a fixed surface point (a vertex, or a
    barycentric blend of three); ``contour_landmarks [C]`` schema indices matched dynamically
    among ``contour_candidates [C,M]`` (padded with the first candidate). The gathered model
    rows are ``mean [R,3]``, ``shape [K_s,R,3]``, ``expression [K_e,R,3]`` with rows
    ``0..Lf-1`` the fixed points, then the candidates. ``weights [Lf + C]``: the association's
    per-landmark weights, in the order of :attr:`landmark_index`.
    """

    schema: str
    fixed_landmarks: torch.Tensor
    contour_landmarks: torch.Tensor
    contour_candidates: torch.Tensor
    mean: torch.Tensor
    shape_basis: torch.Tensor
    shape_var: torch.Tensor
    expression_basis: torch.Tensor
    expression_var: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def gather(cls, model: MorphableModel, schema: str, association: LandmarkAssociation) -> "LandmarkRows":
        association = association.to(model.device)
        contour = sorted(association.contour.items())
        width = max((len(c) for _, c in contour), default=1)
        cand = [torch.cat([c, c[:1].expand(width - len(c))]) for _, c in contour]
        dev = model.device
        candidates = torch.stack(cand).to(dev) if cand else torch.zeros(0, width, dtype=torch.long, device=dev)
        flat = candidates.reshape(-1)

        def rows(values: torch.Tensor) -> torch.Tensor:
            return torch.cat([association.points(values), values[..., flat, :]], dim=-2)

        n_fixed = association.landmark_index.shape[0]
        fixed_weight = association.weight if association.weight is not None else model.shape_mean.new_ones(n_fixed)
        weights = torch.cat([fixed_weight.to(model.dtype), model.shape_mean.new_full((len(contour),), association.contour_weight)])
        return cls(
            schema=schema,
            fixed_landmarks=association.landmark_index,
            contour_landmarks=torch.tensor([k for k, _ in contour], dtype=torch.long, device=dev),
            contour_candidates=candidates,
            mean=rows(model.shape_mean),
            shape_basis=rows(model.shape_basis),
            shape_var=model.shape_var,
            expression_basis=rows(model.expression_basis),
            expression_var=model.expression_var,
            weights=weights,
        )

    @property
    def landmark_index(self) -> torch.Tensor:
        """Schema index of each output row of :meth:`FaceScene.project_landmarks` ``[Lf + C]``."""
        return torch.cat([self.fixed_landmarks, self.contour_landmarks])


class FaceScene:
    """Evaluates a model under :class:`SceneParameters` for a batch of images.

    ``image_size`` (H, W) of the (padded) batch; ``principal_point [B,2]`` pixels.
    """

    def __init__(
        self,
        model: MorphableModel,
        image_size: tuple[int, int],
        principal_point: torch.Tensor,
        texture_resolution: int,
        landmarks: dict[str, LandmarkRows] | None = None,
    ) -> None:
        self.model = model
        self.image_size = image_size
        self.principal_point = principal_point
        self.texture = TextureMapper.cached(model.uv, model.faces, texture_resolution)
        self.faces32 = model.faces.to(torch.int32)
        self.landmarks = landmarks or {}

    # -- geometry -----------------------------------------------------------------------

    def vertices(self, params: SceneParameters) -> torch.Tensor:
        """Model-space vertices with identity and expression ``[B,N,3]``."""
        m, b = self.model, params.batch_size
        shape = expand_identity(params.shape, b)
        identity = combine(m.shape_mean, m.shape_basis, m.shape_var, shape)
        return identity + blend(params.expression * m.expression_var.sqrt(), m.expression_basis)

    def project_landmarks(self, params: SceneParameters, schema: str, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Projected landmarks ``[B, Lf + C, 2]`` in the order of ``LandmarkRows.landmark_index``.

        Only the gathered landmark rows are evaluated. Contour landmarks take, per image,
        the candidate whose projection is nearest its target ``targets [B, L_schema, 2]``
        (the dynamic jaw contour); without targets, the first candidate.
        """
        rows = self.landmarks[schema]
        b = params.batch_size
        shape = expand_identity(params.shape, b)
        pts = combine(rows.mean, rows.shape_basis, rows.shape_var, shape)
        pts = pts + blend(params.expression * rows.expression_var.sqrt(), rows.expression_basis)
        cam = model_to_camera(pts, params.rotation, params.translation)
        pix = project(cam, params.focal, self.principal_point)
        n_fixed = rows.fixed_landmarks.shape[0]
        fixed = pix[:, :n_fixed]
        if rows.contour_landmarks.numel() == 0:
            return fixed
        c, m = rows.contour_candidates.shape
        cand = pix[:, n_fixed:].reshape(b, c, m, 2)
        if targets is None:
            choice = torch.zeros(b, c, dtype=torch.long, device=pix.device)
        else:
            goal = targets[:, rows.contour_landmarks]  # [B,C,2]
            choice = (cand.detach() - goal[:, :, None]).norm(dim=-1).argmin(-1)
        picked = cand.gather(2, choice[..., None, None].expand(b, c, 1, 2))[:, :, 0]
        return torch.cat([fixed, picked], dim=1)

    # -- rendering ----------------------------------------------------------------------

    def constant_roughness(self, rows: int, value: float) -> torch.Tensor:
        """A uniform roughness map ``[rows,T,T,1]`` (the statistical stages have no roughness model)."""
        t = self.texture.resolution
        return torch.full((rows, t, t, 1), value, dtype=self.model.dtype, device=self.model.device)

    def albedo_textures(self, params: SceneParameters) -> tuple[torch.Tensor, torch.Tensor]:
        """Statistical diffuse and specular albedo baked to textures ``[S,T,T,3]`` (the specular
        times ``exp(params.specular_log_scale)``)."""
        m = self.model
        diffuse = combine(m.diffuse_mean, m.diffuse_basis, m.diffuse_var, params.diffuse).clamp(0.0, 1.0)
        specular = combine(m.specular_mean, m.specular_basis, m.specular_var, params.specular)
        specular = (specular * params.specular_log_scale.exp()[:, :, None]).clamp(0.0, 1.0)
        return self.texture.to_texture(diffuse), self.texture.to_texture(specular)

    def render_inputs(
        self,
        params: SceneParameters,
        diffuse: torch.Tensor,
        specular: torch.Tensor,
        roughness: torch.Tensor,
    ) -> RenderInputs:
        """RenderInputs for the batch; textures ``[S,T,T,C]`` with S = 1 (shared) or B."""
        verts = self.vertices(params)
        normals = vertex_normals(verts, self.model.faces)
        return RenderInputs(
            vertices=model_to_camera(verts, params.rotation, params.translation),
            faces=self.faces32,
            normals=rotate_normals(normals, params.rotation),
            uv=self.model.uv,
            diffuse=diffuse,
            specular=specular,
            roughness=roughness,
            sh=params.sh,
            focal=params.focal,
            principal_point=self.principal_point,
        )

    def render_settings(self, samples: int, seed: int = 0, mode: RenderMode = RenderMode.FULL) -> RenderSettings:
        """RenderSettings at this batch's ``image_size`` with ``samples`` per pixel, ``seed`` and ``mode``."""
        return RenderSettings(self.image_size, samples, seed, mode)
