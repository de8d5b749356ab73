"""The stage-2 landmark weight rises over the stage (``[weights] landmarks_stage2`` →
``landmarks_stage2_final``): the photometric term moves the pose while the landmark term is
weak, and the landmarks pull in by the end. The accuracy it buys on real photos is checked
in ``test_calibration_sfm.py``."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from nextface_core.config import load_config
from nextface_core.fitting.stages import FitState
from nextface_core.losses import WeightedTerm, landmark_loss, standard_terms
from nextface_core.testing.kit import synthetic_loss_context


def _landmarks() -> WeightedTerm:
    (term,) = [t for t in standard_terms() if t.name == "landmarks"]
    return term


def test_the_stage2_landmark_weight_moves_linearly_from_its_start_to_its_final_value() -> None:
    config = load_config(overrides={"weights.landmarks_stage2": 0.1, "weights.landmarks_stage2_final": 0.7})
    term = _landmarks()
    assert term.weight(config, 2) == pytest.approx(0.1)  # the start: what decides whether the term is on
    assert [term.weight_at(config, 2, p) for p in (0.0, 0.5, 1.0)] == pytest.approx([0.1, 0.4, 0.7])
    # stage 1 has no final weight: constant
    assert term.weight_at(config, 1, 1.0) == pytest.approx(config.weights.landmarks_stage1)
    # a final weight equal to the start: the constant weight of before
    flat = config.with_overrides({"weights.landmarks_stage2_final": 0.1})
    assert term.weight_at(flat, 2, 1.0) == pytest.approx(0.1)


def test_the_fit_weighs_each_iteration_by_how_far_the_stage_is() -> None:
    config = load_config(overrides={"weights.landmarks_stage2": 0.05, "weights.landmarks_stage2_final": 0.5})
    state = SimpleNamespace(config=config, losses=(_landmarks(),))
    ctx = synthetic_loss_context(2)
    raw = float(landmark_loss(ctx).detach())
    assert raw > 0.1
    for progress, weight in ((0.0, 0.05), (0.5, 0.275), (1.0, 0.5)):
        total, parts = FitState.total(state, replace(ctx, progress=progress))
        assert float(total.detach()) == pytest.approx(weight * raw, rel=1e-9)
        assert float(parts["landmarks"]) == pytest.approx(weight * raw, rel=1e-9)


def test_a_weight_that_starts_at_zero_still_rises() -> None:
    """The fit skipped a term whose *starting* weight was 0, so a ramp from 0 never began."""
    config = load_config(overrides={"weights.landmarks_stage2": 0.0, "weights.landmarks_stage2_final": 0.5})
    state = SimpleNamespace(config=config, losses=(_landmarks(),))
    ctx = synthetic_loss_context(2)
    raw = float(landmark_loss(ctx).detach())
    total, parts = FitState.total(state, replace(ctx, progress=1.0))
    assert float(parts["landmarks"]) == pytest.approx(0.5 * raw, rel=1e-9)
    assert _landmarks().weight_at(config, 3, 1.0) == 0.0  # outside its stages the term stays off
