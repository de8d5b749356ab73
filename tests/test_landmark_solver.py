"""The Levenberg–Marquardt landmark solver (stage 1 and the tracker's landmark step).

Synthetic faces of the small synthetic model with exact landmark projections; the Jacobian
is checked against autograd, the shared-identity Schur solve against a dense solve, and a
batch against each image solved alone.
"""

from __future__ import annotations

import math

import torch

from nextface_core.camera import axis_angle_to_matrix
from nextface_core.synthetic import synthetic_scene
from nextface_core.fitting.landmark_solver import LandmarkObjective, LandmarkSolver, Prior, _State
from nextface_core.fitting.scene import FaceScene, LandmarkRows
from nextface_core.params import SceneParameters

SIZE = 256


def _truth(model, seeds: list[int]) -> SceneParameters:
    """Known parameters of len(seeds) faces with different poses, stacked."""
    faces = []
    for seed in seeds:
        p = synthetic_scene(model, image_size=SIZE, seed=seed)
        p.rotation = torch.tensor([[0.1 * seed - 0.1, 0.3 - 0.2 * seed, 0.05]], dtype=model.dtype)
        faces.append(p)
    cat = {k: torch.cat([getattr(f, k) for f in faces]) for k in faces[0].tensors()}
    return SceneParameters(**cat)


def _problem(model, truth: SceneParameters, shared: bool = False):
    rows = LandmarkRows.gather(model, "ibug68", model.landmarks["ibug68"])
    b = truth.batch_size
    pp = torch.full((b, 2), SIZE / 2.0, dtype=model.dtype)
    scene = FaceScene(model, (SIZE, SIZE), pp, 256, {"ibug68": rows})
    truth = truth.with_first_identity() if shared else truth
    # targets in schema order: project the rows (contour rows: first candidate) at the truth
    targets = scene.project_landmarks(truth, "ibug68")
    weights = torch.ones(b, targets.shape[1], dtype=model.dtype)
    objective = LandmarkObjective(targets=targets, coefficients=weights / weights.sum(), unit=torch.full((b,), 100.0 / SIZE),
                                  principal_point=pp, robust=0.1,
                                  priors=[Prior("shape", 1e-3 / truth.shape.numel()), Prior("expression", 1e-3 / truth.expression.numel())])
    return rows, objective, truth


def _start(truth: SceneParameters) -> SceneParameters:
    start = truth.detached()
    start.shape.zero_()
    start.expression.zero_()
    start.rotation = truth.rotation + 0.15
    start.translation = truth.translation * torch.tensor([1.0, 1.0, 1.15]) + 10.0
    start.focal = truth.focal * 1.1
    return start


def test_analytic_jacobian_matches_autograd(model) -> None:
    truth = _truth(model, [0, 1]).to("cpu")
    rows, objective, truth = _problem(model, truth)
    solver = LandmarkSolver(rows)
    dt = torch.float64
    obj = LandmarkObjective(objective.targets.to(dt) - objective.principal_point.to(dt)[:, None], objective.coefficients.to(dt),
                            objective.unit.to(dt), torch.zeros(2, 2, dtype=dt), robust=0.0)
    p = _start(truth)
    state = _State(axis_angle_to_matrix(p.rotation.to(dt)), p.translation.to(dt), p.expression.to(dt), p.shape.to(dt), p.focal.to(dt))
    columns = solver._columns(free_focal=True)
    _, parts = solver._costs(state, obj)
    _, jac = solver._jacobian(state, obj, parts, free_focal=True)

    def residuals(step: torch.Tensor) -> torch.Tensor:  # [B,P] → [B,2R] with the contour choice held
        trial = solver._apply(state, step, columns)
        _, _, res = solver._project(trial, obj)
        return (res * obj.unit[:, None, None]).reshape(2, -1) * math.sqrt(float(obj.coefficients[0, 0]))

    zero = torch.zeros(2, jac.shape[-1], dtype=dt)
    auto = torch.autograd.functional.jacobian(residuals, zero)  # [B,2R,B,P]
    auto = torch.stack([auto[b, :, b] for b in range(2)])
    torch.testing.assert_close(jac, auto, rtol=1e-7, atol=1e-9)


def test_solver_recovers_pose_expression_shape_and_focal(model) -> None:
    truth = _truth(model, [0, 1, 2])
    rows, objective, truth = _problem(model, truth)
    solution = LandmarkSolver(rows).solve(_start(truth), objective, iterations=200, free_focal=True)
    p = solution.params
    pp = objective.principal_point
    scene = FaceScene(model, (SIZE, SIZE), pp, 256, {"ibug68": rows})
    schema = torch.zeros(3, 68, 2, dtype=model.dtype)  # the targets in schema order
    schema[:, rows.landmark_index] = objective.targets
    err = (scene.project_landmarks(p, "ibug68", schema) - objective.targets).norm(dim=-1)
    assert float(err.mean()) < 0.05  # px, exact landmarks
    r = axis_angle_to_matrix(p.rotation) @ axis_angle_to_matrix(truth.rotation).transpose(1, 2)
    angle = torch.rad2deg(torch.acos(((r.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)))
    assert float(angle.max()) < 1.0
    assert float(((p.focal - truth.focal).abs() / truth.focal).max()) < 0.05
    assert solution.costs[-1] < 1e-3 * solution.costs[0]
    assert all(b <= a for a, b in zip(solution.costs, solution.costs[1:]))  # steps only where the cost drops


def test_a_batch_gives_each_image_what_it_gets_alone(model) -> None:
    truth = _truth(model, [0, 1, 2])
    rows, objective, truth = _problem(model, truth)
    start = _start(truth)
    solver = LandmarkSolver(rows)
    batch = solver.solve(start, objective, iterations=100, free_focal=True).params
    n = objective.coefficients.numel()
    for b in range(3):
        one = SceneParameters(**{k: v[b:b + 1] for k, v in start.tensors().items()})
        alone = LandmarkObjective(objective.targets[b:b + 1], objective.coefficients[b:b + 1] * 3.0, objective.unit[b:b + 1],
                                  objective.principal_point[b:b + 1], objective.robust,
                                  [Prior(p.block, p.weight * 3.0) for p in objective.priors])
        assert alone.coefficients.numel() * 3 == n
        got = solver.solve(one, alone, iterations=100, free_focal=True).params
        for name in ("rotation", "translation", "expression", "shape", "focal"):
            torch.testing.assert_close(getattr(got, name)[0], getattr(batch, name)[b], rtol=1e-5, atol=1e-5)


def test_shared_identity_step_equals_the_dense_solve(model) -> None:
    truth = _truth(model, [0, 1, 2])
    rows, objective, truth = _problem(model, truth, shared=True)
    solver = LandmarkSolver(rows)
    dt = torch.float64
    obj = LandmarkObjective(objective.targets.to(dt) - objective.principal_point.to(dt)[:, None], objective.coefficients.to(dt),
                            objective.unit.to(dt), torch.zeros(3, 2, dtype=dt), 0.1,
                            priors=objective.priors)
    p = _start(truth)
    state = _State(axis_angle_to_matrix(p.rotation.to(dt)), p.translation.to(dt), p.expression.to(dt), p.shape.to(dt), p.focal.to(dt))
    columns = solver._columns(free_focal=True)
    _, parts = solver._costs(state, obj)
    h, g = solver._normal_equations(state, obj, parts, True, columns)
    damping = torch.full((3,), 1e-2, dtype=dt)
    step = solver._steps(h, g, damping, columns["shape"])
    # dense: unknowns [own blocks of the 3 images, then the shared shape]
    shared = columns["shape"]
    own = [i for i in range(h.shape[-1]) if not shared.start <= i < shared.stop]
    hd = solver._damped(h, damping)
    k, m = len(own), shared.stop - shared.start
    dense = torch.zeros(3 * k + m, 3 * k + m, dtype=dt)
    rhs = torch.zeros(3 * k + m, dtype=dt)
    for b in range(3):
        o = slice(b * k, (b + 1) * k)
        dense[o, o] = hd[b][own][:, own]
        dense[o, 3 * k:] = hd[b][own][:, shared]
        dense[3 * k:, o] = hd[b][shared][:, own]
        dense[3 * k:, 3 * k:] += hd[b][shared][:, shared]
        rhs[o] = -g[b][own]
        rhs[3 * k:] -= g[b][shared]
    x = torch.linalg.solve(dense, rhs)
    for b in range(3):
        torch.testing.assert_close(step[b][own], x[b * k:(b + 1) * k], rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(step[b][shared], x[3 * k:], rtol=1e-8, atol=1e-10)


def test_shared_identity_solve_recovers_one_shape_for_three_views(model) -> None:
    truth = _truth(model, [0, 1, 2])
    rows, objective, truth = _problem(model, truth, shared=True)
    solution = LandmarkSolver(rows).solve(_start(truth), objective, iterations=200, free_focal=True)
    assert solution.params.shape.shape[0] == 1
    assert solution.costs[-1] < 1e-3 * solution.costs[0]


def test_fixed_identity_leaves_the_shape_and_follows_the_priors(model) -> None:
    truth = _truth(model, [1])
    rows, objective, truth = _problem(model, truth)
    identity = LandmarkRows.gather(model, "ibug68", model.landmarks["ibug68"])
    from nextface_core.model import combine

    ident = combine(identity.mean, identity.shape_basis, identity.shape_var, truth.shape)
    goal = truth.expression + 0.3
    strong = LandmarkObjective(objective.targets, objective.coefficients, objective.unit, objective.principal_point, 0.0,
                               [Prior("expression", 1e6, goal)])
    start = _start(truth)
    got = LandmarkSolver(rows, identity=ident).solve(start, strong, iterations=50).params
    assert torch.equal(got.shape, start.shape)
    torch.testing.assert_close(got.expression, goal, rtol=0, atol=1e-3)  # a dominant prior pins its block
