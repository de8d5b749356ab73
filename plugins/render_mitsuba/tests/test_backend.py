"""libLLVM discovery, the plugin's availability check, config options, kernel reuse and clean exit."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from nextface_core.config import load_config
from nextface_core.errors import BackendUnavailableError, ConfigError
from nextface_core.plugins import PluginRegistry
from nextface_render_mitsuba import backend


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != backend.ENV_LIBLLVM}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environment, timeout=120)


def test_find_libllvm_prefers_the_newest_usable_version(tmp_path) -> None:
    """Empty placeholder files stand in for libraries: only names and existence are looked at."""
    for name in ("libLLVM-15.so.1", "libLLVM.so.19.1", "libLLVM-18.so", "libLLVM.so.14"):
        (tmp_path / name).touch()
    assert backend.find_libllvm((str(tmp_path / "libLLVM*"),)) == str(tmp_path / "libLLVM.so.19.1")
    (tmp_path / "libLLVM.so.19.1").unlink()
    (tmp_path / "libLLVM-18.so").unlink()
    assert backend.find_libllvm((str(tmp_path / "libLLVM*"),)) is None  # 15 aborts Dr.Jit: never picked


def test_too_old_libllvm_is_refused_before_loading(tmp_path, monkeypatch) -> None:
    """An explicit DRJIT_LIBLLVM_PATH to LLVM 15 would abort the process inside Dr.Jit: refuse it first.
    (An empty placeholder file: only its name is read.)"""
    old = tmp_path / "libLLVM-15.so.1"
    old.touch()
    monkeypatch.setenv(backend.ENV_LIBLLVM, str(old))
    with pytest.raises(BackendUnavailableError, match="is LLVM 15, with which Dr.Jit aborts") as err:
        backend.configure_libllvm()
    assert "libllvm19" in err.value.hint


def test_missing_libllvm_is_a_clear_error() -> None:
    """DRJIT_LIBLLVM_PATH naming a missing file: the renderer refuses before Dr.Jit loads anything."""
    out = _run(
        """
        from nextface_core.errors import BackendUnavailableError
        from nextface_render_mitsuba.renderer import MitsubaRenderer
        import torch
        from nextface_core.render import RenderInputs, RenderSettings
        z = torch.zeros
        inputs = RenderInputs(z(1, 3, 3), torch.tensor([[0, 1, 2]], dtype=torch.int32), z(1, 3, 3), z(3, 2),
                              z(1, 2, 2, 3), z(1, 2, 2, 3), z(1, 2, 2, 1), z(1, 1, 3), torch.ones(1), z(1, 2))
        try:
            MitsubaRenderer().render(inputs, RenderSettings((8, 8)))
        except BackendUnavailableError as exc:
            print("ERROR:", exc.message, "|", exc.hint, "| exit", exc.exit_code)
        import sys
        print("drjit imported:", "drjit" in sys.modules)
        """,
        DRJIT_LIBLLVM_PATH="/nonexistent/libLLVM.so.19.1",
    )
    assert "ERROR:" in out.stdout, out.stderr
    assert "/nonexistent/libLLVM.so.19.1 does not exist" in out.stdout
    assert "apt-get install libllvm19" in out.stdout and "DRJIT_LIBLLVM_PATH" in out.stdout
    assert "exit 4" in out.stdout
    assert "drjit imported: False" in out.stdout


def test_plugins_list_without_libllvm_explains_and_does_not_crash() -> None:
    """``nextface plugins list`` with a missing libLLVM: mitsuba is listed as unavailable, with the fix."""
    out = _run("from nextface_cli.main import app; app(['plugins', 'list'])", DRJIT_LIBLLVM_PATH="/nonexistent/libLLVM.so.19.1")
    assert out.returncode == 0, out.stderr
    line = next(row for row in out.stdout.splitlines() if "mitsuba" in row and "renderer" in row)
    assert "[unavailable]" in line and "apt-get install libllvm19" in line and "does not exist" in line


def test_check_reports_variants() -> None:
    """``nextface plugins list`` line: the CPU variant runs here; CUDA says why not (or ok on a GPU)."""
    availability = PluginRegistry(env={}).resolve("renderer", "mitsuba").availability()
    assert availability.ok
    assert "llvm_ad_rgb: ok" in availability.detail
    expected_cuda = "cuda_ad_rgb: ok" if torch.cuda.is_available() else "cuda_ad_rgb: no GPU"
    assert expected_cuda in availability.detail


def test_factory_reads_plugin_options(tmp_path) -> None:
    """``[plugins.render_mitsuba]`` options reach the renderer; unknown keys and bad values are config errors."""
    registry = PluginRegistry(env={})

    def create(table: str):
        path = tmp_path / "config.toml"
        path.write_text(f"[plugins.render_mitsuba]\n{table}\n")
        return registry.create("renderer", "mitsuba", load_config(path))

    renderer = create('shadow_gradients = "unguided"\nenvmap_height = 16')
    assert (renderer.name, renderer.shadow_gradients, renderer.envmap_height) == ("mitsuba", "unguided", 16)
    assert registry.create("renderer", "mitsuba", load_config(None)).shadow_gradients == "off"
    for bad, fragment in (('integrator = "path"', "unknown key plugins.render_mitsuba.integrator"),
                          ('shadow_gradients = "maybe"', "shadow_gradients = 'maybe' is not allowed"),
                          ('envmap_height = "big"', "envmap_height must be an integer"), ("envmap_height = 2", "envmap_height = 2 is out of range")):
        with pytest.raises(ConfigError, match=fragment):
            create(bad)


def test_no_kernel_recompilation_between_iterations(renderer, scenes) -> None:
    """After a first iteration, new vertices, light, focal, textures and seed reuse every compiled kernel."""
    import drjit as dr

    def iteration(i: int) -> None:
        base, settings = scenes.inputs(samples=2, specular=0.2, seed=i)
        vertices = (base.vertices + 0.01 * i).requires_grad_(True)
        sh = (base.sh * (1.0 + 0.1 * i)).requires_grad_(True)
        focal = (base.focal + i).requires_grad_(True)
        diffuse = (base.diffuse * (1.0 - 0.1 * i)).requires_grad_(True)
        out = renderer.render(dataclasses.replace(base, vertices=vertices, sh=sh, focal=focal, diffuse=diffuse), settings)
        out.image.sum().backward()

    iteration(0)
    iteration(1)
    dr.set_flag(dr.JitFlag.KernelHistory, True)
    try:
        dr.kernel_history()  # clear
        iteration(2)
        iteration(3)
        kernels = [k for k in dr.kernel_history() if k["type"] == dr.KernelType.JIT]
    finally:
        dr.set_flag(dr.JitFlag.KernelHistory, False)
    assert kernels
    misses = [k for k in kernels if not k.get("cache_hit")]
    assert not misses, f"{len(misses)} of {len(kernels)} kernels were compiled again"


def test_no_drjit_leak_warnings_at_exit() -> None:
    """A process that exits with a renderer, its scenes and an un-backpropagated graph alive prints no leak warnings."""
    out = _run(
        """
        import math, torch
        from nextface_core.render import RenderInputs, RenderSettings
        from nextface_render_mitsuba.renderer import MitsubaRenderer
        vertices = torch.tensor([[[-0.5, -0.5, 3.0], [0.5, -0.5, 3.0], [0.0, 0.5, 3.0]]], requires_grad=True)
        normals = torch.tensor([[[0.0, 0.0, -1.0]] * 3])
        sh = torch.ones(1, 4, 3, requires_grad=True)
        inputs = RenderInputs(vertices, torch.tensor([[0, 2, 1]], dtype=torch.int32), normals, torch.rand(3, 2),
                              torch.rand(1, 4, 4, 3), torch.rand(1, 4, 4, 3), torch.rand(1, 4, 4, 1), sh,
                              torch.tensor([20.0]), torch.tensor([[8.0, 8.0]]))
        settings = RenderSettings((16, 16), samples=2)
        RENDERER = MitsubaRenderer()
        RENDERER.render(inputs, settings).image.sum().backward()
        PENDING = RENDERER.render(inputs, settings)  # its autograd graph holds Dr.Jit variables until exit
        print("rendered", float(vertices.grad.abs().sum()) > 0)
        """
    )
    assert out.returncode == 0, out.stderr
    assert "rendered True" in out.stdout
    lowered = out.stderr.lower()
    assert "leak" not in lowered and "drjit" not in lowered and "nanobind" not in lowered, out.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="cuda_ad_rgb needs a CUDA GPU; none here")
def test_cuda_variant_matches_cpu(scenes) -> None:
    """CUDA tensors render with cuda_ad_rgb; the mean agrees with the LLVM render within 2 %."""
    from nextface_render_mitsuba.renderer import MitsubaRenderer

    cpu, settings = scenes.inputs(samples=64)
    cuda = dataclasses.replace(
        cpu, **{f.name: getattr(cpu, f.name).cuda() for f in dataclasses.fields(cpu) if isinstance(getattr(cpu, f.name), torch.Tensor)}
    )
    image_gpu = MitsubaRenderer().render(cuda, settings).image
    image_cpu = MitsubaRenderer().render(cpu, settings).image
    assert image_gpu.device.type == "cuda"
    assert image_gpu.mean().item() == pytest.approx(image_cpu.mean().item(), rel=0.02)
