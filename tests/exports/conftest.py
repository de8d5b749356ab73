"""Fixtures of the export tests: quick fits and a track of synthetic faces written to disk,
and the real clients that read the exports — the Khronos glTF validator (npm), headless
Chromium and Blender (Debian). ``setup.sh --test`` installs the clients; where one is missing
its tests skip with the reason, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from nextface_core.config import load_config
from nextface_core.synthetic import render_synthetic, synthetic_scene
from nextface_core.fitting import Fitter, save_result
from nextface_core.landmarks import LandmarkSet
from nextface_core.plugins import PluginRegistry
from nextface_core.synthetic import synthetic_model

HERE = Path(__file__).parent
SIZE = 128
QUICK = {"run.device": "cpu", "light.bands": 3, "stage1.iterations": 300, "stage2.iterations": 20,
         "stage3.iterations": 3, "texture.resolution": 256}


def need(tool: str, reason: str) -> None:
    """Skip (or under CI fail) the test: ``tool`` is not installed."""
    message = f"{tool} is not installed ({reason}); ./setup.sh --test installs it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def model():
    return synthetic_model("small")


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    return PluginRegistry()


@pytest.fixture(scope="session")
def config():
    return load_config(overrides=QUICK)


def _fit(model, registry, config, seeds_rotations, shared: bool):
    renderer = registry.create("renderer", "vertex", config)
    images, sets = [], []
    truth = synthetic_scene(model, image_size=SIZE, seed=seeds_rotations[0][0], bands=config.light.bands)
    for seed, rotation in seeds_rotations:
        if not shared:
            truth = synthetic_scene(model, image_size=SIZE, seed=seed, bands=config.light.bands)
        if rotation is not None:
            truth.rotation = torch.tensor([[math.radians(a) for a in rotation]], dtype=model.dtype)
        image, landmarks = render_synthetic(model, truth, renderer, config, image_size=SIZE)
        images.append(image)
        sets.append(landmarks)
    names = [f"face{i}" for i in range(len(images))]
    landmarks = {s: LandmarkSet.cat([x[s] for x in sets]) for s in sets[0]}
    landmarks = {s: LandmarkSet(ls.schema, ls.points, ls.confidence, ls.found, names) for s, ls in landmarks.items()}
    fitter = Fitter(config, registry=registry, model=model, renderer=renderer)
    return fitter.fit(images, names, landmarks=landmarks, shared_identity=shared)


@pytest.fixture(scope="session")
def fit_out(model, registry, config, tmp_path_factory):
    """A fit of two synthetic photos (one identity each), saved: (result, output folder)."""
    result = _fit(model, registry, config, [(0, None), (1, (5.0, 25.0, -3.0))], shared=False)
    out = tmp_path_factory.mktemp("fit")
    save_result(result, out)
    return result, out


@pytest.fixture(scope="session")
def shared_out(model, registry, config, tmp_path_factory):
    """A shared-identity fit of two views of one synthetic person, saved."""
    result = _fit(model, registry, config, [(2, (0.0, -15.0, 0.0)), (2, (4.0, 20.0, 2.0))], shared=True)
    out = tmp_path_factory.mktemp("shared")
    save_result(result, out)
    return result, out


@pytest.fixture(scope="session")
def track_out(model, registry, tmp_path_factory):
    """A 6-frame track of a synthetic clip with the true identity, saved (no overlay video)."""
    from nextface_core.tracking import save_track, track_frames
    from nextface_core.synthetic.clip import synthetic_clip

    config = load_config(overrides={"run.device": "cpu", "light.bands": 3, "track.resolution": 96})
    renderer = registry.create("renderer", "vertex", config)
    clip = synthetic_clip(model, renderer, config, count=6, size=96)
    result = track_frames(lambda: iter(clip.frames), config, model=model, renderer=renderer, identity=clip.identity,
                          landmarks=clip.landmarks, fps=10.0)
    out = tmp_path_factory.mktemp("track")
    save_track(result, lambda: iter(clip.frames), out, overlay=False)
    return result, out


# -- the real clients -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gltf_validator():
    """``validate(paths) -> {path: the validator's report}`` with the Khronos glTF validator."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "gltf-validator").is_dir():
        need("the Khronos glTF validator (npm gltf-validator)", "node and tests/exports/node_modules")

    def validate(paths: list[Path]) -> dict[str, Any]:
        done = subprocess.run([node, str(HERE / "validate_gltf.js"), *map(str, paths)], capture_output=True, text=True,
                              timeout=120, check=True)
        return json.loads(done.stdout)

    return validate


@pytest.fixture(scope="session")
def blender(tmp_path_factory):
    """``run(mesh) -> facts`` from Blender importing and rendering ``mesh`` (blender_check.py)."""
    binary = shutil.which("blender")
    if binary is None:
        need("Blender", "Debian package blender")
    root = tmp_path_factory.mktemp("blender")

    def run(mesh: Path) -> dict[str, Any]:
        report, render = root / f"{mesh.parent.name}-{mesh.suffix[1:]}.json", root / f"{mesh.parent.name}-{mesh.suffix[1:]}.png"
        done = subprocess.run([binary, "--background", "--factory-startup", "--python-exit-code", "1",
                               "--python", str(HERE / "blender_check.py"), "--", str(mesh), str(report), str(render)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
        facts = json.loads(report.read_text())
        facts["render"] = render
        return facts

    return run


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--no-default-browser-check", "--mute-audio",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",  # WebGL on the CPU (no GPU here)
    "--window-size=1280,1800", "--remote-debugging-pipe",
]


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4, as
    Puppeteer's pipe transport does): one page, its console errors and its requests."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_child, self._to_child = os.pipe()
        self._from_child, from_child = os.pipe()

        def wire() -> None:  # in the child: its fd 3 reads our commands, fd 4 writes its answers
            a, b = os.dup(to_child), os.dup(from_child)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        """Call ``method`` (on the page's session once attached) and return its result."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", url=url)
        self.evaluate("new Promise(r => document.readyState === 'complete' ? r(1) : addEventListener('load', () => r(1)))")

    def evaluate(self, expression: str, timeout: float = 120.0) -> Any:
        result = self.send("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        import base64

        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])

    def console_errors(self) -> list[str]:
        """Errors the page logged or threw (console.error, uncaught exceptions, failed loads)."""
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                out.append(str(p.get("exceptionDetails", {}).get("exception", {}).get("description", p)))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10.0)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)


@pytest.fixture
def chromium(tmp_path):
    """A fresh headless Chromium (new profile) for one test."""
    binary = shutil.which("chromium")
    if binary is None:
        need("Chromium", "Debian package chromium")
    browser = Chromium(binary, tmp_path / "profile")
    yield browser
    browser.close()
