"""``nextface fit-dataset`` end to end, in a subprocess as a user runs it (local processes,
``--no-ray``, on tiny synthetic faces; the Ray runs are in test_dataset.py)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nextface_core.synthetic.dataset import write_synthetic_dataset
from nextface_model_basel.testing import write_synthetic_basel
from nextface_core.install import extra_command

CODE = "import sys; from nextface_cli.main import main; sys.argv = ['nextface'] + sys.argv[1:]; main()"


def _run(args: list[str], cache: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEXTFACE_CACHE_DIR": str(cache)}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True, env=env, timeout=240)


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    """4 faces of 2 people in sub-folders person0/ and person1/, plus a corrupt photo of person1."""
    ds = write_synthetic_dataset(tmp_path_factory.mktemp("groups"), "basel", write_synthetic_basel, count=4, size=64, groups=2)
    (ds.images / "person1" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return ds


def test_no_ray_shared_identity_to_a_file_url(groups, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(["fit-dataset", str(groups.images), "-o", f"file://{out}", "--no-ray", "--workers", "2",
                   "--shared-identity", "--config", str(groups.config), "--json"], tmp_path / "cache")
    assert result.returncode == 3, result.stderr  # one image failed: an input error
    report = json.loads(result.stdout)
    assert (report["total"], report["done"], report["failed"], report["backend"], report["workers"]) == (5, 4, 1, "process", 2)
    assert report["failures"][0]["image"] == "person1/broken" and "broken.jpg" in report["failures"][0]["error"]
    assert "error: 1 of 5 images failed" in result.stderr and "fix: fix those images and rerun" in result.stderr
    assert re.search(r"^images: 5/5, 1 failed, .*done in \S+$", result.stderr, re.M), result.stderr  # the progress lines
    rows = {r["key"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert {k: r["task"] for k, r in rows.items()} == {
        "person0/face000": "person0", "person0/face002": "person0", "person1/broken": "person1",
        "person1/face001": "person1", "person1/face003": "person1"}
    # one task per person: one identity mesh, each photo its own pose, same shape in both
    for person, faces in (("person0", ("face000", "face002")), ("person1", ("face001", "face003"))):
        assert (out / "fits" / person / "identity" / "mesh.obj").is_file()
        params = [json.loads((out / "fits" / person / f / "params.json").read_text()) for f in faces]
        assert all(p["shared_identity"] for p in params) and params[0]["rotation_axis_angle"] != params[1]["rotation_axis_angle"]
        shapes = [np.load(out / "fits" / person / f / "params.npz")["shape"] for f in faces]
        np.testing.assert_array_equal(shapes[0], shapes[1])
        assert rows[f"{person}/{faces[0]}"]["output"] == str(out / "fits" / person / faces[0])  # local: a plain path
        assert (out / "fits" / person / "identity" / "mesh.glb").is_file()
        for f in faces:  # the gallery links each finished photo's page, which its task wrote
            page = f"fits/{person}/{f}/report.html"
            assert f'href="{page}"' in (out / "report.html").read_text() and (out / page).is_file()
    # the rerun only retries the broken photo: its group is fitted again, person0 is skipped
    again = _run(["fit-dataset", str(groups.images), "-o", f"file://{out}", "--no-ray", "--workers", "2",
                  "--shared-identity", "--config", str(groups.config)], tmp_path / "cache")
    assert again.returncode == 3
    assert "5 images: 4 done, 1 failed, 0 pending; 2 already done before this run" in again.stdout
    assert "this run: 3 images" in again.stdout and "psnr_db: median" in again.stdout


def test_without_ray_the_command_says_how_to_install_it(groups, tmp_path: Path) -> None:
    fake = tmp_path / "fake"  # a `ray` that cannot be imported, as on a machine without the extra
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    result = _run(["fit-dataset", str(groups.images), "-o", str(tmp_path / "out"), "--config", str(groups.config)],
                  tmp_path / "cache", pythonpath=fake)
    assert result.returncode == 4, result.stderr
    assert "error: Ray is not installed" in result.stderr
    assert f"fix: {extra_command('ray')}, or run the same tasks in local processes with --no-ray" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["fit-dataset", "/no/such/folder", "-o", "OUT", "--no-ray"], 3, "error: input /no/such/folder does not exist"),
        (["fit-dataset", "IN", "-o", "memory://x", "--no-ray"], 2, "lives in this process's memory"),
        (["fit-dataset", "IN", "-o", "OUT", "--no-ray", "--address", "auto"], 2, "--address joins a Ray cluster"),
        (["fit-dataset", "IN", "-o", "OUT", "--workers", "0"], 2, "--workers 0 is not a worker count"),
        (["fit-dataset", "IN", "-o", "OUT", "--no-ray", "--manifest-format", "xml"], 2, "manifest format 'xml' is not known"),
    ],
)
def test_bad_invocations_are_one_line_errors(groups, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    args = [str(groups.images) if a == "IN" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = _run(args + ["--config", str(groups.config)], tmp_path / "cache")
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_address_joins_a_running_ray_cluster(groups, tmp_path: Path) -> None:
    """A one-node cluster started with `ray start --head`; the command joins it with --address."""
    pytest.importorskip("ray")
    port = _free_port()
    # token authentication with the cluster's token in the environment of the head and the client
    # (Ray 2.60's `ray start` no longer makes a missing token itself)
    env = {**os.environ, "NEXTFACE_CACHE_DIR": str(tmp_path / "cache"), "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        manifest = tmp_path / "one.jsonl"
        manifest.write_text(json.dumps({"image": str(groups.images / "person0" / "face000.png")}) + "\n")
        result = None
        for _ in range(3):  # the head takes a few seconds to accept clients
            result = subprocess.run([sys.executable, "-c", CODE, "fit-dataset", str(manifest), "-o", str(tmp_path / "out"),
                                     "--address", f"127.0.0.1:{port}", "--config", str(groups.config), "--json"],
                                    capture_output=True, text=True, env=env, timeout=240)
            if "cannot join" not in result.stderr:
                break
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert (report["done"], report["backend"], report["workers"]) == (1, "ray", 1)  # the cluster's one CPU
    finally:
        head.terminate()
        head.wait(timeout=60)
