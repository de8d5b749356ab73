"""Which integrator renders: projective sampling only where the vertices need a gradient, and
sample counts Mitsuba takes without rounding them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest
import torch


def _texture_iteration(renderer, scenes, seed: int, vertex_gradient: bool = False, samples: int = 4):
    """One render + backward with a diffuse map that needs a gradient → (image, diffuse gradient)."""
    base, settings = scenes.inputs(samples=samples, specular=0.2, seed=seed, texels=8)
    diffuse = base.diffuse.clone().requires_grad_(True)
    vertices = base.vertices.clone().requires_grad_(vertex_gradient)
    out = renderer.render(dataclasses.replace(base, diffuse=diffuse, vertices=vertices), settings)
    (out.image * torch.linspace(0.5, 1.5, settings.image_size[1])[:, None]).sum().backward()
    return out.image.detach(), diffuse.grad


def _kernels_of_a_texture_iteration(renderer, scenes) -> int:
    import drjit as dr

    _texture_iteration(renderer, scenes, 1)  # compile first
    dr.set_flag(dr.JitFlag.KernelHistory, True)
    try:
        dr.kernel_history()  # clear
        _texture_iteration(renderer, scenes, 2)
        return sum(1 for k in dr.kernel_history() if k["type"] == dr.KernelType.JIT)
    finally:
        dr.set_flag(dr.JitFlag.KernelHistory, False)


def test_texture_only_iterations_skip_edge_sampling_after_vertex_ones(scenes) -> None:
    """Stage 3 after stage 2: once a render had vertex gradients, Mitsuba keeps the mesh in its
    silhouette list, and ``prb_projective`` went on sampling silhouettes and shadow edges for
    nothing (on the astronaut: 0.3 → 5 s per backward pass). A texture-only iteration must
    launch as many kernels after vertex-gradient iterations as on a renderer that never had any."""
    from nextface_render_mitsuba.renderer import MitsubaRenderer

    fresh, used = MitsubaRenderer(), MitsubaRenderer()
    try:
        _texture_iteration(used, scenes, 0, vertex_gradient=True)
        assert _kernels_of_a_texture_iteration(used, scenes) == _kernels_of_a_texture_iteration(fresh, scenes)
    finally:
        fresh.release()
        used.release()


@pytest.mark.parametrize("shadow_gradients", ["unguided", "guided", "off"])
def test_every_shadow_gradient_setting_gives_a_vertex_gradient(scenes, shadow_gradients: str) -> None:
    """Each ``shadow_gradients`` choice builds its projective integrator and moves the vertices."""
    from nextface_render_mitsuba.renderer import MitsubaRenderer

    renderer = MitsubaRenderer(shadow_gradients=shadow_gradients)
    try:
        base, settings = scenes.inputs(samples=4, specular=0.2)
        shift = torch.zeros(3, requires_grad=True)
        out = renderer.render(dataclasses.replace(base, vertices=base.vertices + shift), settings)
        (out.image[0] * torch.linspace(0.0, 1.0, settings.image_size[1])[:, None]).sum().backward()
        assert shift.grad.abs().sum() > 0
    finally:
        renderer.release()


def test_plain_integrator_matches_the_projective_one(renderer, scenes) -> None:
    """Without vertex gradients the plain integrator renders the same image (within Monte Carlo
    noise) and gives the diffuse map the same gradient direction as the projective one."""
    plain_image, plain_grad = _texture_iteration(renderer, scenes, 3, samples=64)
    proj_image, proj_grad = _texture_iteration(renderer, scenes, 4, vertex_gradient=True, samples=64)
    pooled = [torch.nn.functional.avg_pool2d(i.permute(0, 3, 1, 2), 8) for i in (plain_image, proj_image)]
    assert (pooled[0] - pooled[1]).abs().max() < 0.03 * pooled[1].max()  # 8×8-pixel means: noise averaged out
    assert (plain_image.mean() / proj_image.mean() - 1.0).abs() < 0.01
    cosine = torch.nn.functional.cosine_similarity(plain_grad.flatten(), proj_grad.flatten(), dim=0)
    assert cosine > 0.99, cosine


def test_default_sample_counts_render_without_mitsuba_warnings() -> None:
    """The config's default ``[render] samples`` and ``final_samples``, with and without vertex
    gradients, in every mode: Mitsuba logs no warning (its samplers round counts they do not
    take, e.g. ``ldsampler`` anything but 4, 16, 64, … up to a square)."""
    code = """
        import dataclasses, importlib.util, sys, torch
        from nextface_core.config import load_config
        from nextface_core.render import RenderMode
        spec = importlib.util.spec_from_file_location("conftest_scenes", sys.argv[1])
        scenes = importlib.util.module_from_spec(spec); spec.loader.exec_module(scenes)
        from nextface_render_mitsuba.backend import import_mitsuba
        from nextface_render_mitsuba.renderer import MitsubaRenderer
        mi, dr = import_mitsuba("llvm_ad_rgb")
        render = load_config(None).render
        renderer = MitsubaRenderer()
        mi.set_log_level(mi.LogLevel.Warn)
        for samples in (render.samples, render.final_samples):
            for mode in RenderMode:
                base, settings = scenes.sphere_inputs(samples=samples, mode=mode)
                for grad in (False, True):
                    vertices = base.vertices.clone().requires_grad_(grad)
                    out = renderer.render(dataclasses.replace(base, vertices=vertices), settings)
                    if grad:
                        out.image.sum().backward()
        renderer.release()
        print("done")
    """
    conftest = str(__import__("pathlib").Path(__file__).with_name("conftest.py"))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), conftest], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done" in out.stdout
    assert "WARN" not in out.stdout + out.stderr, (out.stdout + out.stderr)[-2000:]
