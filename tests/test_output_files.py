"""Files you can trust: umask permissions, one atomic writer, whole result folders, and a
full, read-only or forbidden disk reported as an I/O error (exit 74) with nothing half-written.

The full-disk and read-only cases mount a small tmpfs (we run as root in CI). Where mounting
is not permitted the mount tests skip with that reason, and the same code paths still run
on an ``OSError(ENOSPC)`` / ``OSError(EACCES)`` injected into the rename.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nextface_core.synthetic.dataset import write_synthetic_dataset
from nextface_model_basel.testing import write_synthetic_basel
from nextface_core.errors import EXIT_IO, OutputError
from nextface_core.files import atomic_folder, write_text
from nextface_core.landmark_files import write_landmarks
from nextface_core.landmarks import LandmarkSet
from nextface_core.overlay import save_overlay

CODE = "import sys; from nextface_cli.main import main; sys.argv = ['nextface'] + sys.argv[1:]; main()"


def _nextface(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXTFACE_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True, env=env, timeout=300)


def _sets(names: list[str]) -> dict[str, LandmarkSet]:
    n = len(names)
    points = torch.rand(n, 68, 2) * 60
    return {"ibug68": LandmarkSet("ibug68", points, torch.ones(n, 68), torch.ones(n, dtype=torch.bool), names)}


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def umask():
    """Set a umask for one test, restoring the previous one."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(previous)


@pytest.mark.parametrize("mask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_get_the_umask_permissions(tmp_path: Path, umask, mask: int, file_mode: int, folder_mode: int) -> None:
    umask(mask)
    write_text(tmp_path / "a.json", "{}")
    with atomic_folder(tmp_path / "result") as folder:
        write_text(folder / "params.json", "{}")
    image = np.zeros((64, 64, 3), np.uint8)
    save_overlay(tmp_path / "overlay.png", image, _sets(["x"]))
    write_landmarks(tmp_path / "lms.json", _sets(["x"]))
    for name in ("a.json", "result/params.json", "overlay.png", "lms.json"):
        assert _mode(tmp_path / name) == file_mode, name
    assert _mode(tmp_path / "result") == folder_mode


def _fail_rename(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    def refuse(src, dst):  # noqa: ANN001 (os.replace's signature)
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr(os, "replace", refuse)


@pytest.mark.parametrize(
    "writer",
    [
        lambda path: write_landmarks(path.with_suffix(".json"), _sets(["x"])),
        lambda path: save_overlay(path.with_suffix(".png"), np.zeros((64, 64, 3), np.uint8), _sets(["x"])),
    ],
    ids=["landmark JSON", "overlay"],
)
def test_landmark_file_and_overlay_go_through_the_atomic_writer(tmp_path: Path, monkeypatch, writer) -> None:
    target = tmp_path / "out" / "file"
    target.parent.mkdir()
    old = {".json": "old", ".png": "old"}
    for suffix, text in old.items():
        target.with_suffix(suffix).write_text(text)
    _fail_rename(monkeypatch, errno.ENOSPC)
    with pytest.raises(OutputError) as info:
        writer(target)
    assert info.value.exit_code == EXIT_IO == 74
    assert "No space left on device (ENOSPC)" in info.value.message and "free space" in info.value.hint
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.json", "file.png"]  # no temporary left
    assert all(target.with_suffix(s).read_text() == t for s, t in old.items())  # untouched


@pytest.mark.parametrize(
    "code, reason, fix",
    [(errno.ENOSPC, "ENOSPC", "free space"), (errno.EROFS, "EROFS", "read-only"), (errno.EACCES, "EACCES", "permissions")],
)
def test_a_folder_that_fails_leaves_the_previous_one_whole(tmp_path: Path, monkeypatch, code: int, reason: str, fix: str) -> None:
    result = tmp_path / "face"
    with atomic_folder(result) as folder:
        write_text(folder / "params.json", "old")
    real_replace = os.replace

    def refuse_last(src, dst):  # noqa: ANN001 (the file renames inside the folder work; the folder's own fails)
        if Path(dst).parent == tmp_path:
            raise OSError(code, os.strerror(code), str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse_last)
    with pytest.raises(OutputError) as info, atomic_folder(result) as folder:
        write_text(folder / "params.json", "new")
        write_text(folder / "mesh.obj", "v 0 0 0\n")
    assert f"({reason})" in info.value.message and fix in info.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face"]
    assert (result / "params.json").read_text() == "old" and not (result / "mesh.obj").exists()


def test_an_error_inside_the_folder_names_the_final_path(tmp_path: Path, monkeypatch) -> None:
    _fail_rename(monkeypatch, errno.ENOSPC)
    with pytest.raises(OutputError) as info, atomic_folder(tmp_path / "face") as folder:
        write_text(folder / "params.json", "x")
    assert str(tmp_path / "face" / "params.json") in info.value.message and ".part" not in info.value.message
    assert list(tmp_path.iterdir()) == []


# -- a real full disk: a small tmpfs ----------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    """A tiny synthetic photo with exact landmarks, fitted once to a normal folder (sizes)."""
    root = tmp_path_factory.mktemp("fulldisk")
    ds = write_synthetic_dataset(root / "ds", "basel", write_synthetic_basel, count=1, size=64)
    face = next(ds.images.glob("*.png"))
    done = _nextface("fit", str(face), "-o", str(root / "ok"), "--config", str(ds.config), cache=root / "cache")
    assert done.returncode == 0, done.stderr
    return root, ds, face


def _mount_tmpfs(path: Path, size: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): the injected-OSError tests cover the code path"
        )


@pytest.fixture
def small_disk(tmp_path: Path):
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8): the injected-OSError tests cover the code path")
    mounted = []

    def mount(size: int) -> Path:
        path = tmp_path / "disk"
        _mount_tmpfs(path, size)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


def _used(folder: Path) -> int:
    """Bytes a tmpfs needs for the files of the result folder ``folder`` (whole 4 KiB pages);
    its report page is written after the folder is renamed into place, so it is not counted."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file() and p.name != "report.html")


def test_full_disk_leaves_the_checkpoint_and_no_half_result_then_resume_finishes(dataset, small_disk) -> None:
    root, ds, face = dataset
    ok = root / "ok"
    checkpoint = -(-(ok / "checkpoint_stage3.npz").stat().st_size // 4096) * 4096
    folder = _used(ok / face.stem)
    disk = small_disk(checkpoint + folder // 2)
    out = disk / "out"
    full = _nextface("fit", str(face), "-o", str(out), "--config", str(ds.config), cache=root / "cache")
    assert full.returncode == 74, full.stderr
    lines = full.stderr.strip().splitlines()
    error, fix = lines[-2], lines[-1]
    assert error.startswith("error: cannot write ") and "No space left on device (ENOSPC)" in error, full.stderr
    assert fix.startswith("fix: free space") and f"--resume {out / 'checkpoint_stage3.npz'}" in fix, full.stderr
    assert "Traceback" not in full.stderr and "internal error" not in full.stderr
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint_stage3.npz"]  # no half folder, no temporaries
    subprocess.run(["mount", "-o", f"remount,size={4 * (checkpoint + folder) + 2**20}", str(disk)], check=True)
    resumed = _nextface(
        "fit",
        str(face),
        "-o",
        str(out),
        "--config",
        str(ds.config),
        "--resume",
        str(out / "checkpoint_stage3.npz"),
        cache=root / "cache",
    )
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in (out / face.stem).iterdir()) == sorted(p.name for p in (ok / face.stem).iterdir())
    assert json.loads((out / "summary.json").read_text())["images"][0]["name"] == face.stem


def test_read_only_disk_is_an_io_error_before_anything_is_written(dataset, small_disk) -> None:
    root, ds, face = dataset
    disk = small_disk(2**20)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    done = _nextface("fit", str(face), "-o", str(disk / "out"), "--config", str(ds.config), cache=root / "cache")
    assert done.returncode == 74, done.stderr
    assert "Read-only file system (EROFS)" in done.stderr and "fix: that file system is read-only" in done.stderr, done.stderr
    assert done.stderr.count("error: ") == 1 and "fix: " in done.stderr and "Traceback" not in done.stderr
    assert list(disk.iterdir()) == []
