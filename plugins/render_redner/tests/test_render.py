"""Real redner, through the real worker: runs only where ``NEXTFACE_REDNER_PYTHON`` points to a
Python with torch and redner (see the plugin README); skipped with that reason elsewhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from nextface_core.camera import project
from nextface_core.render import RenderInputs, RenderMode, RenderSettings
from nextface_core.shading import shade
from nextface_core.testing.kit import synthetic_render_inputs
from nextface_render_vertex import VertexRenderer
from nextface_render_redner.renderer import ENV_PYTHON, RednerRenderer

if not os.environ.get(ENV_PYTHON):
    pytest.skip(f"{ENV_PYTHON} is not set: no Python environment with redner to run the worker in (plugin README)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def renderer():
    with RednerRenderer(os.environ[ENV_PYTHON], device=os.environ.get("NEXTFACE_REDNER_DEVICE", "auto")) as r:
        assert r.worker.info.backend == "redner"
        yield r


def _quad(centre, half: float, size=(40, 56), samples: int = 16) -> tuple[RenderInputs, RenderSettings]:
    """A camera-facing square (normal −z) at ``centre``, grey diffuse, lit from the front; ``size`` (H, W), ``samples``."""
    c = torch.tensor(centre)
    corners = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]]) * half + c
    sh = torch.zeros(1, 4, 3)
    sh[0, 0] = 2.0
    sh[0, 2] = 0.5  # brighter towards camera −y (up): positive everywhere (|0.5·Y1| < 2·Y0)
    inputs = RenderInputs(
        vertices=corners[None], faces=torch.tensor([[0, 2, 1], [0, 3, 2]], dtype=torch.int32),
        normals=torch.tensor([[[0.0, 0.0, -1.0]] * 4]), uv=torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]),
        diffuse=torch.full((1, 2, 2, 3), 0.5), specular=torch.zeros(1, 2, 2, 3), roughness=torch.full((1, 2, 2, 1), 0.5),
        sh=sh, focal=torch.tensor([70.0]), principal_point=torch.tensor([[31.0, 17.5]]),
    )
    return inputs, RenderSettings(size, samples)


def test_the_worker_reports_redner(renderer: RednerRenderer) -> None:
    info = renderer.worker.info
    assert info.python.startswith("3.") and info.backend_version and info.device in ("cpu", "cuda")


def test_projection_matches_core_camera(renderer: RednerRenderer) -> None:
    inputs, settings = _quad((0.23, 0.11, 2.0), 0.02, samples=64)
    mask = renderer.render(inputs, settings).mask[0, ..., 0]
    h, w = settings.image_size
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    centroid = torch.stack([(mask * xs).sum(), (mask * ys).sum()]) / mask.sum()
    expected = project(torch.tensor([[[0.23, 0.11, 2.0]]]), inputs.focal, inputs.principal_point)[0, 0]
    assert (centroid - expected).abs().max() < 0.5


def test_lambertian_matches_core_shading_and_light_gradient(renderer: RednerRenderer) -> None:
    """A large diffuse quad: interior pixels equal ρ E(n)/π of the core within 3 %; ∂/∂sh₀ within 5 % of FD."""
    inputs, settings = _quad((0.0, 0.0, 2.0), 0.6, samples=64)
    sh = inputs.sh.clone().requires_grad_(True)
    out = renderer.render(replace(inputs, sh=sh), settings)
    inside = out.mask[0, ..., 0] > 0.999
    n = torch.tensor([[[0.0, 0.0, -1.0]]])
    want = shade(n, torch.tensor([[[0.0, 0.0, 2.0]]]), torch.full((1, 1, 3), 0.5), torch.zeros(1, 1, 3),
                 torch.full((1, 1, 1), 0.5), inputs.sh.detach())[0, 0]
    got = out.image[0][inside].mean(0)
    torch.testing.assert_close(got, want.to(got.dtype), rtol=0.03, atol=0.0)
    out.image.sum().backward()
    step = 0.1
    plus, minus = inputs.sh.clone(), inputs.sh.clone()
    plus[0, 0, 0] += step
    minus[0, 0, 0] -= step
    fd = (renderer.render(replace(inputs, sh=plus), settings).image.sum()
          - renderer.render(replace(inputs, sh=minus), settings).image.sum()) / (2 * step)
    assert sh.grad[0, 0, 0].item() == pytest.approx(fd.item(), rel=0.05)


def test_vertex_and_focal_gradients_move_the_silhouette(renderer: RednerRenderer) -> None:
    """Shifting the quad right (+x) or raising focal grows the mask sum the way finite differences say (10 %)."""
    inputs, settings = _quad((0.05, 0.0, 2.0), 0.3, samples=16)
    vertices = inputs.vertices.clone().requires_grad_(True)
    focal = inputs.focal.clone().requires_grad_(True)
    weights = torch.linspace(0.0, 1.0, settings.image_size[1])  # brighter to the right: a shift right raises the loss
    out = renderer.render(replace(inputs, vertices=vertices, focal=focal), settings)
    (out.mask[0, ..., 0] * weights).sum().backward()

    def loss(**kw) -> float:
        with torch.no_grad():
            return float((renderer.render(replace(inputs, **kw), settings).mask[0, ..., 0] * weights).sum())

    shift = torch.zeros_like(inputs.vertices)
    shift[..., 0] = 0.01
    fd_x = (loss(vertices=inputs.vertices + shift) - loss(vertices=inputs.vertices - shift)) / 0.02
    assert float(vertices.grad[..., 0].sum()) == pytest.approx(fd_x, rel=0.1)
    fd_f = (loss(focal=inputs.focal + 1.0) - loss(focal=inputs.focal - 1.0)) / 2.0
    assert float(focal.grad[0]) == pytest.approx(fd_f, rel=0.1)


def test_batch_equals_per_image(renderer: RednerRenderer) -> None:
    one, settings = _quad((0.0, 0.0, 2.0), 0.4, samples=4)
    batch = replace(
        one, vertices=one.vertices.repeat(2, 1, 1), normals=one.normals.repeat(2, 1, 1), sh=torch.cat([one.sh, 2 * one.sh]),
        focal=one.focal.repeat(2), principal_point=one.principal_point.repeat(2, 1),
    )
    images = renderer.render(batch, settings).image
    torch.testing.assert_close(images[0], renderer.render(one, settings).image[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(images[1], 2 * images[0], rtol=1e-3, atol=1e-4)


def test_albedo_mode_returns_the_diffuse_texture(renderer: RednerRenderer) -> None:
    """A G-buffer render: exactly the texture inside, alpha 1 (with a light bounce, redner 0.4.28
    added radiance into these channels: (.2,.5,.8) came back (.49,.96,.8), alpha 1.12)."""
    quad, settings = _quad((0.0, 0.0, 2.0), 0.6, samples=4)
    inputs = replace(quad, diffuse=torch.tensor([0.2, 0.5, 0.8]).expand(1, 2, 2, 3).contiguous())
    out = renderer.render(inputs, replace(settings, mode=RenderMode.ALBEDO))
    inside = out.mask[0, ..., 0] > 0.999
    assert int(inside.sum()) > 500 and float(out.mask.max()) <= 1.0 + 1e-6
    torch.testing.assert_close(out.image[0][inside], torch.tensor([0.2, 0.5, 0.8]).expand(int(inside.sum()), 3), rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", list(RenderMode))
def test_a_synthetic_face_agrees_with_the_vertex_renderer(renderer: RednerRenderer, mode: RenderMode) -> None:
    """The same RenderInputs of a synthetic face (64 px, 64 spp) through redner and through the
    ``vertex`` renderer: masks overlap (IoU > 0.9) and the interior's mean absolute difference is
    within 6 % of its mean (albedo: 1 %); what remains is shadowing/occlusion, Fresnel and noise."""
    inputs, settings = synthetic_render_inputs(batch=1, image_size=64, mode=mode)
    settings = replace(settings, samples=64)
    want, got = VertexRenderer(use_nvdiffrast="never").render(inputs, settings), renderer.render(inputs, settings)
    a, b = want.mask[0, ..., 0], got.mask[0, ..., 0]
    assert float(((a > 0.5) & (b > 0.5)).sum() / ((a > 0.5) | (b > 0.5)).sum()) > 0.9
    inside = (a > 0.99) & (b > 0.99)
    diff = (want.image[0][inside] - got.image[0][inside]).abs().mean(0) / want.image[0][inside].mean(0)
    assert float(diff.max()) < (0.01 if mode == RenderMode.ALBEDO else 0.06), diff


BUSY = """
import os, sys, torch
from dataclasses import replace
from nextface_core.testing.kit import synthetic_render_inputs
from nextface_render_redner.renderer import RednerRenderer
renderer = RednerRenderer(os.environ["NEXTFACE_REDNER_PYTHON"])
print(renderer.worker.pid, flush=True)
inputs, settings = synthetic_render_inputs(batch=1, image_size=256)
settings = replace(settings, samples=256)
while True:
    renderer.render(inputs, settings)
"""


def test_a_fit_killed_mid_render_leaves_no_orphan_worker() -> None:
    """SIGKILL to the parent while redner renders (pyredner holds the GIL: the worker's watchdog
    thread cannot run): the kernel's parent-death signal ends the worker."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True)
    worker = int(proc.stdout.readline())
    time.sleep(3.0)  # inside a render
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the redner worker outlived its parent")
