"""The worker bridge for real: a worker process, the pipe protocol and the autograd Function.

The worker here is the STAND-IN of ``standin/vertex_standin_worker.py``: the real worker loop
and protocol, started with ``python -m`` like the real one, rendering with the ``vertex``
renderer in this Python (redner cannot be installed on it). Through it, the bridge must give
what the vertex renderer gives when called directly, images and gradients.
Also here: every way the worker can fail to start, each one ``WorkerError`` (exit code 4).
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nextface_core.config import load_config
from nextface_core.errors import BackendUnavailableError, ConfigError
from nextface_core.plugins import PluginRegistry
from nextface_core.render import RenderMode, RenderSettings
from nextface_core.testing import check_renderer
from nextface_core.testing.kit import synthetic_render_inputs
from nextface_render_redner import check
from nextface_render_redner.client import WorkerError, WorkerProcess
from nextface_render_redner.renderer import ARRAY_FIELDS, ENV_PYTHON, RednerRenderer, create_renderer, worker_options
from nextface_render_vertex import VertexRenderer

STANDIN_DIR = Path(__file__).with_name("standin")
STANDIN = "vertex_standin_worker"
GRADS = ("vertices", "normals", "diffuse", "specular", "roughness", "sh", "focal", "principal_point")


def standin(**kw) -> RednerRenderer:
    """The bridge renderer on the vertex stand-in worker (this Python)."""
    return RednerRenderer(sys.executable, module=STANDIN, pythonpath=[STANDIN_DIR], **kw)


@pytest.fixture(scope="module")
def bridge():
    os.environ["NEXTFACE_STANDIN_THREADS"] = str(torch.get_num_threads())
    with standin() as renderer:
        yield renderer
    os.environ.pop("NEXTFACE_STANDIN_THREADS")


def _with_leaves(inputs, names=GRADS):
    leaves = {n: getattr(inputs, n).detach().clone().requires_grad_(True) for n in names}
    return replace(inputs, **leaves), leaves


def _weighted(out, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    w_img = torch.rand(out.image.shape, generator=g, dtype=out.image.dtype)
    w_mask = torch.rand(out.mask.shape, generator=g, dtype=out.mask.dtype)
    return (out.image * w_img).sum() + (out.mask * w_mask).sum()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", list(RenderMode))
def test_images_and_gradients_equal_the_vertex_renderer(bridge: RednerRenderer, dtype: torch.dtype, mode: RenderMode) -> None:
    """Two faces (per-image diffuse, shared specular/roughness): image, mask and the gradient of
    every input agree with the vertex renderer called directly within 1e-5."""
    inputs, settings = synthetic_render_inputs(batch=2, image_size=64, dtype=dtype, mode=mode)
    direct = VertexRenderer(use_nvdiffrast="never")
    got_in, got_leaves = _with_leaves(inputs)
    want_in, want_leaves = _with_leaves(inputs)
    got, want = bridge.render(got_in, settings), direct.render(want_in, settings)
    assert got.image.dtype == dtype and got.mask.dtype == dtype
    torch.testing.assert_close(got.image, want.image, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.mask, want.mask, rtol=0, atol=1e-5)
    _weighted(got).backward()
    _weighted(want).backward()
    for name in GRADS:
        g, w = got_leaves[name].grad, want_leaves[name].grad
        if w is None:  # e.g. no specular gradient in albedo mode
            assert g is None or not g.any(), name
            continue
        assert g is not None and g.dtype == dtype, name
        scale = max(float(w.abs().max()), 1.0)
        torch.testing.assert_close(g, w, rtol=0, atol=1e-5 * scale, msg=name)


@pytest.mark.parametrize("name", ["vertices", "diffuse", "sh", "focal"])
def test_bridge_gradients_match_finite_differences(bridge: RednerRenderer, name: str) -> None:
    """Directional derivative of a weighted image + mask loss: autograd through the bridge vs
    central differences of bridge renders (float64)."""
    base, settings = synthetic_render_inputs(batch=1, image_size=48, dtype=torch.float64)

    def loss(value: torch.Tensor) -> torch.Tensor:
        return _weighted(bridge.render(replace(base, **{name: value}), settings))

    value = getattr(base, name).clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(value), value)
    direction = torch.randn(value.shape, generator=torch.Generator().manual_seed(2), dtype=value.dtype)
    eps = 1e-6 if name in ("vertices", "focal") else 1e-4
    with torch.no_grad():
        fd = float((loss(value + eps * direction) - loss(value - eps * direction)) / (2 * eps))
    analytic = float((grad * direction).sum())
    assert abs(analytic) > 1e-3
    assert analytic == pytest.approx(fd, rel=0.02, abs=1e-4)


def test_the_bridge_passes_the_renderer_contract(bridge: RednerRenderer) -> None:
    passed = check_renderer(bridge, dtypes=(torch.float32, torch.float64))  # raises ContractError on a failed check
    assert "float64: gradient flows to focal" in passed and "float32: batch equals per-image (image)" in passed


def test_a_render_without_gradients_keeps_no_graph_and_backward_needs_its_render(bridge: RednerRenderer) -> None:
    inputs, settings = synthetic_render_inputs(batch=1, image_size=32)
    with torch.no_grad():
        out = bridge.render(replace(inputs, sh=inputs.sh.clone().requires_grad_(True)), settings)
    assert not out.image.requires_grad
    with pytest.raises(WorkerError, match="has no graph here"):
        bridge.send_backward(10**6, bridge.worker.pid, out.image, None)
    assert bridge.worker.alive  # a failed request is an error reply, not a dead worker


def test_a_worker_side_exception_is_an_error_and_the_worker_stays(bridge: RednerRenderer) -> None:
    inputs, settings = synthetic_render_inputs(batch=2, image_size=32)
    tensors = [getattr(inputs, n) for n in ARRAY_FIELDS]
    tensors[ARRAY_FIELDS.index("focal")] = inputs.focal[:1]  # the worker's RenderInputs check refuses it
    with pytest.raises(WorkerError, match="failed to render: ValueError: RenderInputs.focal has shape"):
        bridge.send_render(RenderSettings((32, 32)), torch.zeros(9, 8, 16), tensors, [])
    assert bridge.worker.alive
    assert bridge.render(inputs, settings).image.shape == (2, 32, 32, 3)


def test_close_stops_the_worker_and_a_render_after_it_starts_a_new_one(bridge: RednerRenderer) -> None:
    first = bridge.worker
    bridge.close()
    assert first._proc.poll() is not None and not first.alive
    out = bridge.render(*synthetic_render_inputs(batch=1, image_size=32))
    assert bridge.worker.pid != first.pid and bridge.worker.alive and out.mask.sum() > 0


# -- starting: every failure is one WorkerError, exit code 4 -----------------------------


def test_an_interpreter_that_does_not_exist() -> None:
    with pytest.raises(WorkerError) as err:
        WorkerProcess("/nonexistent/bin/python", source=ENV_PYTHON)
    assert err.value.message == f"the redner worker interpreter '/nonexistent/bin/python' ({ENV_PYTHON}) does not exist"
    assert ENV_PYTHON in err.value.hint and err.value.exit_code == 4


def test_a_program_that_is_not_python(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'I am not python' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(WorkerError) as err:
        WorkerProcess(str(fake))
    assert f"the redner worker (pid {err.value.message.split('pid ')[1].split(',')[0]}, {fake}) exited with status 3 during start" in err.value.message
    assert "its last stderr lines: I am not python" in err.value.message


def test_a_program_that_writes_garbage(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Python 2.7.18 says hello on stdout'\nsleep 30\n")
    fake.chmod(0o755)
    with pytest.raises(WorkerError, match="not a NextFace redner worker message"):
        WorkerProcess(str(fake))


def test_an_interpreter_that_never_answers(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    with pytest.raises(WorkerError, match=r"did not start the redner worker within 0.5 s"):
        WorkerProcess(str(fake), startup_timeout=0.5)


def test_redner_missing_in_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real worker module in this Python (torch, no redner): its own message, as ``plugins list`` shows it."""
    monkeypatch.setenv(ENV_PYTHON, sys.executable)
    availability = check()
    assert not availability.ok
    assert availability.detail.startswith(f"the redner worker cannot run: No module named 'pyredner' in {sys.executable} (Python ")
    assert f"(fix: install redner into that interpreter: {sys.executable} -m pip install" in availability.detail


def test_a_protocol_version_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXTFACE_STANDIN_PROTOCOL", "99")
    with pytest.raises(WorkerError) as err:
        standin()
    assert "speaks protocol version 99, this plugin version 2" in err.value.message
    assert "reinstall nextface-render-redner" in err.value.hint


def test_options_from_config_and_environment() -> None:
    from nextface_core.config import Config

    registration = PluginRegistry(env={}).resolve("renderer", "redner")
    config = load_config(overrides=None)
    assert worker_options(registration.parse_options(config), env={}).python is None
    data = config.as_dict()
    data["plugins"] = {"render_redner": {"python": "/opt/py38/bin/python", "device": "cpu"}}
    opts = worker_options(registration.parse_options(Config(data)), env={})
    assert (opts.python, opts.source, opts.device) == ("/opt/py38/bin/python", "[plugins.render_redner] python", "cpu")
    opts = worker_options(registration.parse_options(Config(data)), env={ENV_PYTHON: "/other/python"})
    assert (opts.python, opts.source) == ("/other/python", ENV_PYTHON)
    for bad in ({"device": "tpu"}, {"envmap_height": 3}, {"pyhton": "x"}, {"python": 3}):
        data["plugins"] = {"render_redner": bad}
        with pytest.raises(ConfigError):
            registration.parse_options(Config(data))


def test_not_configured_is_exit_4_and_listed_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PYTHON, raising=False)
    availability = PluginRegistry(env={}).resolve("renderer", "redner").availability()
    assert not availability.ok and ENV_PYTHON in availability.detail
    with pytest.raises(BackendUnavailableError) as err:
        create_renderer(load_config(None))
    assert err.value.exit_code == 4 and "vertex" in err.value.hint and ENV_PYTHON in err.value.hint


def test_the_worker_reports_its_python_backend_and_mode(bridge: RednerRenderer) -> None:
    """What ``plugins list`` shows for a worker that runs (here the stand-in's hello)."""
    described = bridge.worker.info.describe()
    assert described == (f"worker {sys.executable} (Python {sys.version.split()[0]}, torch {torch.__version__}): "
                         f"vertex-stand-in {bridge.worker.info.backend_version}, CPU mode")
