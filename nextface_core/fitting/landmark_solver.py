"""Levenberg–Marquardt over the landmark rows, with an analytic Jacobian.

One solver for the fit's stage 1 (pose, expression, shape and focal of a batch, the identity
optionally shared by every view) and the tracker's per-frame landmark step (pose and
expression, identity fixed). It minimises

    E = Σ_i c_i ρ(|u (p_i − q_i)|²) + Σ_priors w Σ (unit · (θ − goal))²

over the projections ``p_i`` of the gathered landmark rows (contour landmarks take, at every
evaluation, the candidate nearest their target ``q_i``), with ``u`` the pixel unit (the fit
measures errors in % of the image's longer side) and ``ρ(s) = √(s + ε²) − ε`` (the fit's
Charbonnier landmark loss) or ``ρ(s) = s`` (``robust = 0``). Robust terms enter the normal
equations with the weights ``c ρ'(s)`` of iteratively reweighted least squares; a step is kept
only where it lowers ``E`` itself.

The unknowns of one image are a rotation increment (``R ← exp(δ) R``), the translation, the
expression, the focal length (optional) and the shape (when per image). A shared shape couples
the views; its block is solved through the Schur complement of the per-view blocks, so the cost
grows linearly with the number of views. Without a shared block every image keeps its own
damping and acceptance: a batch gives each image exactly what it would get alone.

The algebra runs in float64 (the normal equations of ~300 unknowns lose digits in float32, and
the result must not depend on the summation order of a batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch

from ..camera import AXES_FLIP, axis_angle_to_matrix, matrix_to_axis_angle
from ..params import SceneParameters
from .scene import LandmarkRows

#: damping (× the diagonal of the normal equations) at the start, and its bounds
DAMPING = (1e-3, 1e-9, 1e9)
#: a step that lowers the cost by less than this fraction of it ends the solve
RELATIVE_TOLERANCE = 1e-10
#: the fit's starting tilts (radians, see :meth:`LandmarkSolver.solve`): as closed-form, and ±17°
PITCH_STARTS = (0.0, 0.3, -0.3)
_BLOCKS = ("rotation", "translation", "expression", "shape", "focal")


@dataclass(frozen=True)
class Prior:
    """``weight · Σ (unit · (θ − goal))²`` over one parameter block (``rotation``,
    ``translation``, ``expression``, ``shape`` or ``focal``); ``goal [B or 1, n]`` (None: 0). On the
    rotation block the increment's Jacobian is taken as the identity (small steps)."""

    block: str
    weight: float
    goal: torch.Tensor | None = None
    unit: float | torch.Tensor = 1.0  # a number, or ``[B,1]`` per image

    def cost(self, value: torch.Tensor) -> torch.Tensor:
        """The term per row of ``value [B or 1, n]`` (the block's current value) → ``[B or 1]``."""
        diff = value - self.goal if self.goal is not None else value
        return self.weight * (self.unit * diff).square().sum(1)


@dataclass
class LandmarkObjective:
    """What is minimised for a batch of B images.

    ``targets [B,R,2]`` pixels, in the order of :attr:`LandmarkRows.landmark_index`;
    ``coefficients [B,R]`` the ``c_i`` (0 leaves a point out); ``unit [B]`` the residual's
    unit per pixel; ``principal_point [B,2]`` pixels; ``robust`` the Charbonnier ε (0: plain squares); ``priors``.
    """

    targets: torch.Tensor
    coefficients: torch.Tensor
    unit: torch.Tensor
    principal_point: torch.Tensor
    robust: float = 0.0
    priors: list[Prior] = field(default_factory=list)


@dataclass
class Solution:
    """The solved parameters, the cost ``E`` before the first and after each iteration
    (summed over the batch), and the iterations run (one linear solve each)."""

    params: SceneParameters
    costs: list[float]
    iterations: int


@dataclass
class _State:
    rotation: torch.Tensor  # [B,3,3]
    translation: torch.Tensor  # [B,3]
    expression: torch.Tensor  # [B,K_e]
    shape: torch.Tensor  # [S,K_s] (S = 1 shared, or B)
    focal: torch.Tensor  # [B]


class LandmarkSolver:
    """Levenberg–Marquardt on the landmark rows of one schema (see the module docstring).

    ``identity [1,G,3]``: model-space rows of a fixed identity (the tracker); without it the
    shape is an unknown.
    """

    def __init__(self, rows: LandmarkRows, identity: torch.Tensor | None = None) -> None:
        dt = torch.float64
        flip = torch.tensor(AXES_FLIP, dtype=dt, device=rows.mean.device)
        self.rows = rows
        self.dtype = rows.mean.dtype
        self.n_fixed = rows.fixed_landmarks.shape[0]
        self.n_contour, self.n_candidates = rows.contour_candidates.shape
        self.free_shape = identity is None
        mean = rows.mean if identity is None else identity[0]
        self.mean = mean.to(dt) * flip  # [G,3], camera axes
        expression = rows.expression_basis.to(dt) * rows.expression_var.to(dt).sqrt()[:, None, None]
        bases = [expression]
        if self.free_shape:
            bases.append(rows.shape_basis.to(dt) * rows.shape_var.to(dt).sqrt()[:, None, None])
        self.n_expression = expression.shape[0]
        self.n_shape = rows.shape_basis.shape[0] if self.free_shape else 0
        # [G,3,K]: expression columns, then shape columns, in camera axes
        self.basis = (torch.cat(bases) * flip).permute(1, 2, 0).contiguous()

    # -- evaluation ---------------------------------------------------------------------

    def _coefficients(self, s: _State) -> torch.Tensor:
        """``[B,K]`` blend weights of :attr:`basis` (expression, then shape)."""
        if not self.free_shape:
            return s.expression
        return torch.cat([s.expression, s.shape.expand(s.expression.shape[0], -1)], dim=1)

    def _project(self, s: _State, obj: LandmarkObjective) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Camera points ``[B,R,3]`` of the chosen rows, their row indices ``[B,R]`` and the
        pixel residuals ``[B,R,2]`` (contour rows: the candidate nearest the target)."""
        g = self.basis.shape[0]
        pts = self.mean + (self.basis.reshape(g * 3, -1) @ self._coefficients(s).T).T.reshape(-1, g, 3)
        cam = pts @ s.rotation.transpose(1, 2) + s.translation[:, None]
        pix = s.focal[:, None, None] * cam[..., :2] / cam[..., 2:3]
        b, n, c, m = cam.shape[0], self.n_fixed, self.n_contour, self.n_candidates
        index = torch.arange(n, device=cam.device).expand(b, n)
        if c:
            goal = obj.targets[:, n:]
            dist = (pix[:, n:].reshape(b, c, m, 2) - goal[:, :, None]).square().sum(-1)
            choice = n + torch.arange(c, device=cam.device) * m + dist.argmin(-1)
            index = torch.cat([index, choice], dim=1)
        cam = cam.gather(1, index[..., None].expand(-1, -1, 3))
        pix = pix.gather(1, index[..., None].expand(-1, -1, 2))
        return cam, index, pix - obj.targets

    def _costs(self, s: _State, obj: LandmarkObjective) -> tuple[torch.Tensor, tuple]:
        """``E`` per image ``[B]`` (a shared shape's prior counted in image 0), and what the
        Jacobian needs."""
        cam, index, res = self._project(s, obj)
        sq = (res * obj.unit[:, None, None]).square().sum(-1)  # [B,R]
        eps = obj.robust
        rho = (sq + eps * eps).sqrt() - eps if eps > 0 else sq
        cost = (obj.coefficients * rho).sum(1)
        for prior in obj.priors:
            term = prior.cost(self._block_value(s, prior.block))
            if term.shape[0] != cost.shape[0]:  # a shared block: once, in image 0
                term = torch.cat([term, term.new_zeros(cost.shape[0] - 1)])
            cost = cost + term
        bad = (cam[..., 2] <= 0).any(1) | (s.focal <= 0) | ~torch.isfinite(cost)
        return torch.where(bad, torch.full_like(cost, math.inf), cost), (cam, index, res, sq)

    @staticmethod
    def _block_value(s: _State, block: str) -> torch.Tensor:
        """``[B or 1, n]`` the current value of a block (rotation: axis-angle)."""
        if block == "rotation":
            return matrix_to_axis_angle(s.rotation)
        if block == "focal":
            return s.focal[:, None]
        return getattr(s, block)

    # -- normal equations ---------------------------------------------------------------

    def _jacobian(self, s: _State, obj: LandmarkObjective, parts: tuple, free_focal: bool) -> torch.Tensor:
        """Weighted residuals ``[B,2R]`` and Jacobian ``[B,2R,P]`` (columns: rotation
        increment, translation, expression, shape, focal) of the IRLS-weighted problem."""
        cam, index, res, sq = parts
        x, y, z = cam.unbind(-1)
        f = s.focal[:, None]
        iz = 1.0 / z
        zero = torch.zeros_like(z)
        d_proj = torch.stack([f * iz, zero, -f * x * iz * iz, zero, f * iz, -f * y * iz * iz], -1).unflatten(-1, (2, 3))
        rx, ry, rz = (cam - s.translation[:, None]).unbind(-1)
        d_rot = torch.stack([zero, rz, -ry, -rz, zero, rx, ry, -rx, zero], -1).unflatten(-1, (3, 3))  # −[rel]×
        d_basis = s.rotation[:, None] @ self.basis[index]  # [B,R,3,K]
        columns = [d_rot, torch.eye(3, dtype=cam.dtype, device=cam.device).expand_as(d_rot), d_basis]
        jac = d_proj @ torch.cat(columns, dim=-1)  # [B,R,2,6+K]
        if free_focal:
            jac = torch.cat([jac, torch.stack([x * iz, y * iz], -1)[..., None]], dim=-1)
        eps = obj.robust
        weight = obj.coefficients / (2.0 * (sq + eps * eps).sqrt()) if eps > 0 else obj.coefficients  # c ρ'(s)
        scale = (weight.clamp_min(0.0).sqrt() * obj.unit[:, None])[..., None]  # [B,R,1]
        b = cam.shape[0]
        return (res * scale).reshape(b, -1), (jac * scale[..., None]).reshape(b, -1, jac.shape[-1])

    def _columns(self, free_focal: bool) -> dict[str, slice]:
        k_e, k_s = self.n_expression, self.n_shape
        cols = {"rotation": slice(0, 3), "translation": slice(3, 6), "expression": slice(6, 6 + k_e)}
        if self.free_shape:
            cols["shape"] = slice(6 + k_e, 6 + k_e + k_s)
        if free_focal:
            cols["focal"] = slice(6 + k_e + k_s, 7 + k_e + k_s)
        return cols

    def _normal_equations(self, s: _State, obj: LandmarkObjective, parts: tuple, free_focal: bool,
                          columns: dict[str, slice]) -> tuple[torch.Tensor, torch.Tensor]:
        """``H [B,P,P]`` and gradient ``g [B,P]`` (both halved), priors included (a shared
        block's prior in image 0's rows only, so the Schur sum counts it once)."""
        r, jac = self._jacobian(s, obj, parts, free_focal)
        jt = jac.transpose(1, 2)
        h, g = jt @ jac, (jt @ r[..., None])[..., 0]
        b = h.shape[0]
        for prior in obj.priors:
            cols = columns[prior.block]
            diff = self._block_value(s, prior.block) - (prior.goal if prior.goal is not None else 0.0)
            unit = torch.as_tensor(prior.unit, dtype=h.dtype, device=h.device)
            w = (prior.weight * unit**2) * torch.ones(b, 1, dtype=h.dtype, device=h.device)
            if diff.shape[0] != b:
                w[1:] = 0.0
                diff = diff.expand(b, -1)
            h[:, cols, cols] += torch.diag_embed(w.expand(-1, diff.shape[1]))
            g[:, cols] += w * diff
        return h, g

    @staticmethod
    def _damped(h: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
        diag = h.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12)
        return h + torch.diag_embed(damping[:, None] * diag)

    def _steps(self, h, g, damping, shared: slice | None) -> torch.Tensor:
        """The damped Gauss–Newton steps ``[B,P]``; ``shared``: the columns of a block common to
        every image (solved through the Schur complement of the per-image blocks)."""
        if shared is None:
            return torch.linalg.solve(self._damped(h, damping), -g)
        own = torch.ones(h.shape[-1], dtype=torch.bool, device=h.device)
        own[shared] = False
        hd = self._damped(h, damping)
        h_ll, h_lg, g_l = hd[:, own][:, :, own], hd[:, own][:, :, shared], g[:, own]
        h_gg, g_g = hd[:, shared][:, :, shared].sum(0), g[:, shared].sum(0)
        solved = torch.linalg.solve(h_ll, torch.cat([g_l[..., None], h_lg], dim=-1))  # H_ll⁻¹ [g_l | H_lg]
        schur = h_gg - (h_lg.transpose(1, 2) @ solved[..., 1:]).sum(0)
        rhs = -g_g + (h_lg.transpose(1, 2) @ solved[..., :1]).sum(0)[:, 0]
        d_g = torch.linalg.solve(schur, rhs)
        d_l = -solved[..., 0] - (solved[..., 1:] @ d_g)
        step = torch.empty_like(g)
        step[:, own], step[:, shared] = d_l, d_g.expand(h.shape[0], -1)
        return step

    @staticmethod
    def _apply(s: _State, step: torch.Tensor, columns: dict[str, slice]) -> _State:
        rotation = axis_angle_to_matrix(step[:, columns["rotation"]]) @ s.rotation
        new = _State(rotation, s.translation + step[:, columns["translation"]],
                     s.expression + step[:, columns["expression"]], s.shape, s.focal)
        if "shape" in columns:
            new.shape = s.shape + step[: s.shape.shape[0], columns["shape"]]
        if "focal" in columns:
            new.focal = s.focal + step[:, columns["focal"]][:, 0]
        return new

    @staticmethod
    def _select(keep: torch.Tensor, new: _State, old: _State) -> _State:
        """Per image: ``new`` where ``keep [B]``, else ``old``."""
        def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            k = keep if a.shape[0] == keep.shape[0] else keep[:1]
            return torch.where(k.reshape(-1, *([1] * (a.ndim - 1))), a, b)
        return _State(*(pick(getattr(new, n), getattr(old, n)) for n in _BLOCKS))

    # -- the solve ----------------------------------------------------------------------

    def solve(self, params: SceneParameters, objective: LandmarkObjective, iterations: int,
              free_focal: bool = False, progress: Callable[[int, float], None] | None = None,
              pitch_starts: Sequence[float] = (0.0,)) -> Solution:
        """Run at most ``iterations`` Levenberg–Marquardt iterations from ``params`` (each one
        linear solve); stop once every image's step gains less than
        :data:`RELATIVE_TOLERANCE` of its cost or its damping hits the upper bound.

        ``pitch_starts``: radians about the camera's x axis added to the starting rotation, one
        solve each; each image keeps its lowest-cost solve (a shared identity: the lowest
        total). Landmarks alone leave a head's tilt ambiguous (a face tilted up or down
        projects alike under near-orthographic views), so one start can end in the wrong
        basin. Returns the parameters in the model's dtype (``shape`` unchanged when the
        identity is fixed); ``costs`` and ``iterations`` count every start's iterations."""
        dt = torch.float64
        centred = objective.targets.to(dt) - objective.principal_point.to(dt)[:, None]  # pixels about the centre
        obj = replace(objective, targets=centred, coefficients=objective.coefficients.to(dt), unit=objective.unit.to(dt),
                      principal_point=torch.zeros_like(centred[:, 0]),
                      priors=[replace(p, goal=None if p.goal is None else p.goal.to(dt),
                                      unit=p.unit.to(dt) if torch.is_tensor(p.unit) else p.unit) for p in objective.priors])
        start = _State(axis_angle_to_matrix(params.rotation.to(dt)), params.translation.to(dt), params.expression.to(dt),
                       params.shape.to(dt), params.focal.to(dt))
        shared_shape = self.free_shape and start.shape.shape[0] == 1 and start.expression.shape[0] > 1
        best, best_cost, costs, total = None, None, [], 0
        for pitch in pitch_starts:
            tilt = axis_angle_to_matrix(torch.tensor([pitch, 0.0, 0.0], dtype=dt, device=start.focal.device))
            s = replace(start, rotation=tilt @ start.rotation)
            s, cost, history = self._run(s, obj, iterations, free_focal, shared_shape, columns=self._columns(free_focal),
                                         progress=None if progress is None else lambda it, c: progress(total + it, c))
            total += len(history) - 1
            costs += history if not costs else history[1:]
            if best is None:
                best, best_cost = s, cost
                continue
            keep = cost.sum(0, keepdim=True).expand_as(cost) < best_cost.sum() if shared_shape else cost < best_cost
            best, best_cost = self._select(keep, s, best), torch.where(keep, cost, best_cost)
        out = replace(params, rotation=matrix_to_axis_angle(best.rotation).to(self.dtype),
                      translation=best.translation.to(self.dtype), expression=best.expression.to(self.dtype),
                      focal=best.focal.to(self.dtype))
        if self.free_shape:
            out.shape = best.shape.to(self.dtype)
        if len(pitch_starts) > 1:
            costs.append(float(best_cost.sum()))
        return Solution(out, costs, total)

    def _run(self, s: _State, obj: LandmarkObjective, iterations: int, free_focal: bool, shared_shape: bool,
             columns: dict[str, slice], progress: Callable[[int, float], None] | None):
        """One Levenberg–Marquardt solve from ``s``: the final state, its cost per image
        ``[B]`` and the summed cost before and after each iteration."""
        dt = torch.float64
        b = s.expression.shape[0]
        groups = 1 if shared_shape else b  # images solved together share damping and acceptance
        damping = torch.full((groups,), DAMPING[0], dtype=dt, device=s.focal.device)
        done = torch.zeros(groups, dtype=torch.bool, device=s.focal.device)
        cost, parts = self._costs(s, obj)
        costs = [float(cost.sum())]
        h, g = self._normal_equations(s, obj, parts, free_focal, columns)
        it = 0
        while it < iterations and not bool(done.all()):
            it += 1
            per_image = damping.expand(b) if shared_shape else damping
            trial = self._apply(s, self._steps(h, g, per_image, columns["shape"] if shared_shape else None), columns)
            new_cost, new_parts = self._costs(trial, obj)
            old_total = cost.sum(0, keepdim=True) if shared_shape else cost
            new_total = new_cost.sum(0, keepdim=True) if shared_shape else new_cost
            better = (new_total <= old_total) & ~done
            gain = (old_total - new_total) / old_total.clamp_min(1e-300)
            done |= (better & (gain < RELATIVE_TOLERANCE)) | (~better & (damping >= DAMPING[2]))
            damping = torch.where(better, damping / 10.0, damping * 10.0).clamp(DAMPING[1], DAMPING[2])
            keep = better.expand(b) if shared_shape else better
            if bool(keep.any()):
                s = self._select(keep, trial, s)
                cost = torch.where(keep, new_cost, cost)
                parts = new_parts if bool(keep.all()) else self._costs(s, obj)[1]
                h, g = self._normal_equations(s, obj, parts, free_focal, columns)
            costs.append(float(cost.sum()))
            if progress is not None:
                progress(it, costs[-1])
        return s, cost, costs
