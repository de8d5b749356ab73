"""Benchmark ``fit_folder``: ``nextface fit FOLDER`` memory and throughput, 1, 24 and 100 photos.

Photos: variants of scikit-image's astronaut (mirrored, cropped, shifted in colour and
brightness; 256 px), fitted with the real sfm-as-bfm shape model (``../shared/models/sfm-as-bfm``,
3448 vertices), MediaPipe landmarks and the vertex renderer, with short stages (memory does
not depend on the iteration counts). Each run is a fresh ``nextface fit`` process; its peak
RSS comes from ``wait4``.

Figures: peak RSS (MB) and images/min per folder size, against the targets (≤ 2 GB for 24 and
for 100 photos); baseline measured in the same run: the same 24 photos in one batch
(``run.batch_size = 24``, what ``nextface fit FOLDER`` did before chunking), when the machine
has 12 GB free for it. Shared identity
(all views in one batch): peak RSS for 2 and 6 views and the memory per view. One full-size
fit (the synthetic full model, 28588 vertices, in the Basel layouts) at 512 px against ≤ 1 GB.
``quick=True``: 1 and 4 photos only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SFM = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "sfm-as-bfm"
CODE = "import sys; from nextface_cli.main import main; sys.argv = ['nextface'] + sys.argv[1:]; main()"
TARGET_FOLDER_MB = 2048.0
TARGET_FULL_512_MB = 1024.0
SHORT = """[run]
device = "cpu"
model = "basel"
landmarks = "mediapipe"
max_resolution = {resolution}
batch_size = {batch}
[model]
path = "{model}"
[stage1]
iterations = 100
[stage2]
iterations = 10
[stage3]
iterations = 5
"""


def _photos(folder: Path, count: int, size: int = 256) -> None:
    """``count`` astronaut variants of ``size`` px in ``folder``."""
    from PIL import Image
    from skimage import data

    base = data.astronaut()[:320, 60:380]  # the face and shoulders
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        y, x = rng.integers(0, 40, size=2)
        crop = base[y:y + 280, x:x + 280].astype(np.float32)
        crop = crop * rng.uniform(0.8, 1.15, size=3) + rng.uniform(-15, 15)
        if i % 2:
            crop = crop[:, ::-1]
        image = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize((size, size), Image.Resampling.LANCZOS)
        image.save(folder / f"photo{i:03d}.png")


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run the CLI; (peak RSS MB, wall seconds, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CODE, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"nextface {' '.join(args)} exited {code}: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024.0, seconds, code


def _available_mb() -> float:
    with open("/proc/meminfo") as f:
        rows = dict(line.split(":", 1) for line in f)
    return float(rows["MemAvailable"].split()[0]) / 1024.0


def run(quick: bool = False) -> dict[str, object]:
    if not SFM.is_dir():
        raise FileNotFoundError(f"the sfm-as-bfm model folder {SFM} is absent")
    from nextface_core.config import load_config

    default_batch = load_config().run.batch_size
    figures: dict[str, object] = {"photo_px": 256, "model": "sfm-as-bfm (3448 vertices)", "batch_size": default_batch}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "NEXTFACE_CACHE_DIR": str(root / "cache")}
        counts = (1, 4) if quick else (1, 24, 100)
        _photos(root / "all", max(counts))
        baseline = not quick and _available_mb() > 12000  # one batch of 24 took 7.5 GB before chunking
        if not quick and not baseline:
            figures["photos24_one_batch_baseline"] = "skipped: under 12 GB of free memory on this machine"
        for batch, label in [(default_batch, "")] + ([(24, "_one_batch_baseline")] if baseline else []):
            (root / f"c{batch}.toml").write_text(SHORT.format(resolution=256, batch=batch, model=SFM))
            for n in counts if not label else (24,):
                folder = root / f"in{n}"
                if not folder.exists():
                    folder.mkdir()
                    for f in sorted((root / "all").iterdir())[:n]:
                        (folder / f.name).symlink_to(f)
                rss, seconds, _ = _run(["fit", str(folder), "-o", str(root / f"out{n}_{batch}"), "--config", str(root / f"c{batch}.toml")], env)
                figures[f"photos{n}{label}_peak_rss_mb"] = round(rss, 1)
                figures[f"photos{n}{label}_images_per_min"] = round(n / seconds * 60.0, 1)
                if n > 1 and not label:
                    figures[f"photos{n}_target_mb"] = TARGET_FOLDER_MB
                    figures[f"photos{n}_within_target"] = rss <= TARGET_FOLDER_MB
        shared = {}
        for views in (2, 6):
            folder = root / f"in{views}"
            if not folder.exists():
                folder.mkdir()
                for f in sorted((root / "all").iterdir())[:views]:
                    (folder / f.name).symlink_to(f)
            shared[views], _, _ = _run(["fit", str(folder), "-o", str(root / f"shared{views}"), "--shared-identity",
                                        "--config", str(root / f"c{default_batch}.toml")], env)
            figures[f"shared_identity_{views}_views_peak_rss_mb"] = round(shared[views], 1)
        figures["shared_identity_mb_per_view"] = round((shared[6] - shared[2]) / 4.0, 1)
        if not quick:
            from nextface_model_basel.testing import write_synthetic_basel

            write_synthetic_basel(root / "full_model", size="full")
            (root / "full.toml").write_text(SHORT.format(resolution=512, batch=1, model=root / "full_model"))
            _photos(root / "big", 1, size=512)
            rss, seconds, _ = _run(["fit", str(root / "big" / "photo000.png"), "-o", str(root / "out_full"),
                                    "--config", str(root / "full.toml")], env)
            figures["full_model_512px_peak_rss_mb"] = round(rss, 1)
            figures["full_model_512px_target_mb"] = TARGET_FULL_512_MB
            figures["full_model_512px_within_target"] = rss <= TARGET_FULL_512_MB
    return figures
