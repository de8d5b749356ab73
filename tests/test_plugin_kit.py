"""The plugin test kit: real plugins pass their contracts; plugins with one known defect
(named fakes below, each broken on purpose) fail with a message naming that check."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from nextface_core import hookimpl
from nextface_core.landmark_files import FileDetector, write_landmarks
from nextface_core.landmarks import LandmarkSet
from nextface_core.losses import LossContext, WeightedTerm, standard_terms
from nextface_core.render import RenderOutput, RenderSettings
from nextface_core.synthetic import synthetic_model
from nextface_core.testing.kit import (
    ContractError,
    check_detector,
    check_loss,
    check_model,
    check_plugin,
    check_renderer,
    fresh_registry,
    synthetic_loss_context,
    synthetic_render_inputs,
)
from nextface_core.testing.pytest_plugin import nextface_registry  # noqa: F401  (fixture)

import nextface_render_vertex


# -- registry ---------------------------------------------------------------------------


def test_fresh_registry_ignores_installed_plugins_and_environment(monkeypatch, nextface_registry) -> None:  # noqa: F811
    monkeypatch.setenv("NEXTFACE_PLUGINS", "render_vertex")
    registry = fresh_registry()
    assert [p.name for p in registry.plugins()] == ["core"]
    assert registry.names("renderer") == []
    assert [p.name for p in nextface_registry.plugins()] == ["core"]
    nextface_registry.add("render_vertex", nextface_render_vertex)
    assert nextface_registry.names("renderer") == ["vertex"]
    assert fresh_registry().names("renderer") == []  # nothing leaked into a new registry


def test_check_plugin_names_what_is_registered_when_the_name_is_missing() -> None:
    with pytest.raises(ContractError, match=r"name registered: registered renderers are \['vertex'\]"):
        check_plugin(nextface_render_vertex, "renderer", "nope")


def test_check_plugin_reports_a_registration_hook_that_raises() -> None:
    class Plugin:  # fake: its hook fails
        @hookimpl
        def nextface_register_renderers(self, register) -> None:
            raise RuntimeError("backend table missing")

    with pytest.raises(ContractError) as info:
        check_plugin(Plugin(), "renderer", "any")
    assert "plugin loads: RuntimeError: backend table missing" in str(info.value)
    assert "name registered: registered renderers are []" in str(info.value)


def test_check_plugin_reports_a_missing_description() -> None:
    class Plugin:  # fake: registers without a description
        @hookimpl
        def nextface_register_renderers(self, register) -> None:
            register("bare", nextface_render_vertex.create, options=nextface_render_vertex.VertexOptions)

    with pytest.raises(ContractError, match="has a description"):
        check_plugin(Plugin(), "renderer", "bare")


# -- renderer ---------------------------------------------------------------------------


def test_the_vertex_renderer_passes_the_renderer_contract() -> None:
    passed = check_plugin(nextface_render_vertex, "renderer", "vertex")
    for name in ("float32: gradient flows to focal", "float32: batch equals per-image (image)", "listed with its hook"):
        assert name in passed


def test_the_renderer_contract_runs_in_float64_with_a_tight_tolerance() -> None:
    passed = check_renderer(nextface_render_vertex.VertexRenderer("never"), dtypes=(torch.float64,), atol=1e-9)
    assert "float64: image dtype" in passed and "float64: batch equals per-image (image)" in passed


class _BatchNormalisingRenderer:
    """Fake, broken on purpose: divides by the batch's brightest pixel, so an image depends
    on the other images of its batch."""

    name = "batch-normalising"

    def __init__(self) -> None:
        self.inner = nextface_render_vertex.VertexRenderer("never")

    def render(self, inputs, settings):
        out = self.inner.render(inputs, settings)
        return RenderOutput(out.image / out.image.max().clamp_min(1e-6), out.mask)


class _DetachedDoubleRenderer:
    """Fake, broken on purpose: returns a detached float64 image."""

    name = "detached"

    def __init__(self) -> None:
        self.inner = nextface_render_vertex.VertexRenderer("never")

    def render(self, inputs, settings):
        out = self.inner.render(inputs, settings)
        return RenderOutput(out.image.detach().double(), out.mask.detach())


def test_a_renderer_whose_images_depend_on_the_batch_fails() -> None:
    with pytest.raises(ContractError) as info:
        check_renderer(_BatchNormalisingRenderer())
    assert "batch equals per-image (image)" in str(info.value)
    assert "(mask)" not in str(info.value)  # the mask is untouched and passes


def test_a_detached_renderer_of_the_wrong_dtype_fails() -> None:
    with pytest.raises(ContractError) as info:
        check_renderer(_DetachedDoubleRenderer())
    text = str(info.value)
    assert "image dtype: torch.float64 != input dtype torch.float32" in text
    assert "output requires grad" in text


class _StraightAlphaRenderer:
    """Broken on purpose: returns the face's colour un-multiplied by its coverage."""

    name = "straight-alpha"

    def __init__(self) -> None:
        self.inner = nextface_render_vertex.VertexRenderer("never")

    def render(self, inputs, settings):
        out = self.inner.render(inputs, settings)
        return RenderOutput(image=out.image / out.mask.clamp_min(1e-3), mask=out.mask)


def test_the_renderer_contract_checks_that_the_image_is_premultiplied() -> None:
    passed = check_renderer(nextface_render_vertex.VertexRenderer("never"))
    assert "float32: image premultiplied by coverage" in passed
    with pytest.raises(ContractError) as info:
        check_renderer(_StraightAlphaRenderer())
    assert "image premultiplied by coverage" in str(info.value) and "return colour × coverage" in str(info.value)


def test_synthetic_render_inputs_hold_two_different_faces() -> None:
    inputs, settings = synthetic_render_inputs(batch=2, image_size=32)
    assert settings == RenderSettings((32, 32), samples=4, seed=0)
    assert inputs.vertices.shape[0] == 2 and inputs.diffuse.shape[0] == 2 and inputs.specular.shape[0] == 1
    assert float((inputs.vertices[0] - inputs.vertices[1]).abs().max()) > 1.0  # mm: different identities


# -- loss -------------------------------------------------------------------------------


@pytest.mark.parametrize("term", standard_terms(), ids=lambda t: t.name)
def test_every_standard_loss_term_passes_the_loss_contract(term) -> None:
    assert any("batch equals per-image" in name for name in check_loss(term))


def test_a_loss_summed_over_the_batch_fails() -> None:
    def summed(ctx: LossContext) -> torch.Tensor:
        return ctx.params.expression.pow(2).sum()  # broken on purpose: grows with the batch

    with pytest.raises(ContractError, match="stage 1: batch equals per-image"):
        check_loss(WeightedTerm("summed", summed, "expression_prior", (1,)))


def test_synthetic_loss_contexts_repeat_one_image() -> None:
    one, two = synthetic_loss_context(2, batch=1), synthetic_loss_context(2, batch=2)
    assert torch.equal(two.render.image[0], two.render.image[1])
    assert torch.equal(one.params.shape[0], two.params.shape[1])


# -- model ------------------------------------------------------------------------------


def test_the_synthetic_model_passes_the_model_contract() -> None:
    assert "mirror plane x = 0" in check_model(synthetic_model("small"))


def test_a_model_in_metres_with_y_as_mirror_axis_fails() -> None:
    model = synthetic_model("small")
    swapped = model.shape_mean[:, [1, 0, 2]] / 1000.0  # broken on purpose: metres, x and y exchanged
    with pytest.raises(ContractError) as info:
        check_model(replace(model, shape_mean=swapped))
    assert "millimetres: largest extent 0.19" in str(info.value)
    assert "mirror plane x = 0" in str(info.value)


# -- detector ---------------------------------------------------------------------------


def _landmark_file(tmp_path, found=(True, False)) -> tuple[FileDetector, list[np.ndarray], list[str]]:
    names = ["a.png", "b.png"]
    g = torch.Generator().manual_seed(0)
    points = torch.rand(2, 68, 2, generator=g) * 60.0 + 2.0
    found_t = torch.tensor(found)
    sets = {"ibug68": LandmarkSet("ibug68", points * found_t[:, None, None], torch.ones(2, 68) * found_t[:, None], found_t, names)}
    path = write_landmarks(tmp_path / "lm.json", sets, {n: (64, 64) for n in names})
    images = [np.zeros((64, 64, 3), np.uint8) for _ in names]
    return FileDetector(path), images, names


def test_the_file_detector_passes_the_detector_contract(tmp_path) -> None:
    detector, images, names = _landmark_file(tmp_path)
    passed = check_detector(detector, images, names, expect_found=[True, False])
    assert "ibug68: image 1 without a face is zero" in passed


class _ShiftingDetector:
    """Fake, broken on purpose: shifts every point by the batch size and reports the wrong order."""

    name = "shifting"

    def __init__(self, inner: FileDetector) -> None:
        self.inner = inner

    def detect(self, images, names):
        sets = self.inner.detect(images, names)
        ls = sets["ibug68"]
        return {"ibug68": LandmarkSet("ibug68", ls.points + len(images), ls.confidence, ls.found, list(reversed(ls.names)))}


def test_a_batch_dependent_detector_fails(tmp_path) -> None:
    detector, images, names = _landmark_file(tmp_path, found=(True, True))
    with pytest.raises(ContractError) as info:
        check_detector(_ShiftingDetector(detector), images, names)
    text = str(info.value)
    assert "ibug68: batch equals per-image: max difference 1 px" in text
    assert "names in order" in text


def test_contracts_on_a_missing_cuda_device_skip_with_the_reason() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the contract would run there")
    with pytest.raises(pytest.skip.Exception, match="needs a CUDA device"):
        check_model(synthetic_model("small"), device="cuda")


def _plugin_with_check(check):
    class Plugin:  # fake: the vertex renderer behind a given availability check
        @hookimpl
        def nextface_register_renderers(self, register) -> None:
            register("checked", nextface_render_vertex.create, description="vertex behind a check", check=check,
                     options=nextface_render_vertex.VertexOptions)

    return Plugin()


def test_an_unavailable_backend_is_skipped_with_its_reason() -> None:
    from nextface_core import Availability

    with pytest.raises(pytest.skip.Exception, match="not available here: no GPU here"):
        check_plugin(_plugin_with_check(lambda: Availability(False, "no GPU here")), "renderer", "checked")


def test_a_check_that_raises_breaks_the_contract() -> None:
    def check():
        raise RuntimeError("boom")

    with pytest.raises(ContractError, match="availability check answers: check failed: boom"):
        check_plugin(_plugin_with_check(check), "renderer", "checked")


def test_check_plugin_reports_malformed_options() -> None:
    from dataclasses import dataclass

    from nextface_core.options import option

    @dataclass  # fake: not frozen, and an option without help
    class LooseOptions:
        nvdiffrast: str = option("auto")

    class Plugin:
        @hookimpl
        def nextface_register_renderers(self, register) -> None:
            register("loose", nextface_render_vertex.create, description="vertex with loose options", options=LooseOptions)

    with pytest.raises(ContractError, match="options well formed: 'LooseOptions' must be a frozen dataclass"):
        check_plugin(Plugin(), "renderer", "loose")
