"""The ``vertex`` renderer's self-shadowing (``[plugins.render_vertex] shadows``), off against on
in the same run.

1. **Agreement with a ray tracer.** The reflectance truth (full-size synthetic face, its true
   geometry, maps and 9-band light, 256 px) rendered by ``vertex`` and by Mitsuba at 256 spp:
   sRGB PSNR over the pixels Mitsuba covers fully, and the ms of one visibility.
2. **Real photos.** The astronaut and five variants of it (mirrored, cropped, scaled by 0.83,
   rotated by 6°, mirrored + cropped + rotated by −4°: each a different pixel grid and a
   different fit), fitted at 256 px with the real Surrey face shape (sfm-as-bfm in the Basel
   layouts, ``../shared/models/sfm-as-bfm``) and the default config, in a fresh cache folder
   (ibug68 landmarks): mean sRGB PSNR over the covered pixels, over the face mask, the mean
   ibug-68 error (% IOD) and the fit seconds. One photo's PSNR moves by ±1 dB with any small
   change of the fit; the mean of six is the figure to compare.

``--quick``: the agreement only, at 64 px.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

SFM = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "sfm-as-bfm"
TRUTH_SAMPLES = 256


def agreement(size: int) -> dict[str, object]:
    """Vertex (shadows off, on) against Mitsuba on the reflectance truth at ``size`` px."""
    import torch

    from nextface_core.color import linear_to_srgb
    from nextface_core.config import load_config
    from nextface_core.fitting.scene import FaceScene
    from nextface_core.plugins import PluginRegistry
    from nextface_core.synthetic import synthetic_model
    from nextface_core.synthetic.reflectance import reflectance_truth
    from nextface_render_vertex import VertexRenderer

    config = load_config(overrides={"run.device": "cpu"})
    model = synthetic_model("full")
    truth = reflectance_truth(model, texels=config.texture.resolution, image_size=size)
    scene = FaceScene(model, (size, size), torch.full((1, 2), size / 2.0), config.texture.resolution)
    inputs = scene.render_inputs(truth.params, truth.diffuse, truth.specular_rgb, truth.roughness)
    traced = PluginRegistry().create("renderer", "mitsuba", config).render(inputs, scene.render_settings(TRUTH_SAMPLES))
    inside = (traced.mask > 0.99).expand(-1, -1, -1, 3)
    figures: dict[str, object] = {}
    for shadows in (False, True):
        renderer = VertexRenderer(shadows=shadows)
        image = renderer.render(inputs, scene.render_settings(1)).image
        error = (linear_to_srgb(image.clamp(0, 1)) - linear_to_srgb(traced.image.clamp(0, 1)))[inside]
        figures[f"vs_mitsuba_{'on' if shadows else 'off'}_db"] = round(-10.0 * math.log10(float(error.pow(2).mean())), 2)
    start = time.perf_counter()
    renderer.shadows.reset()
    renderer.shadows.visibility(inputs)
    figures["visibility_ms"] = round((time.perf_counter() - start) * 1000.0, 1)
    return figures


def variants(folder: Path) -> None:
    """Write the astronaut and its five variants (module docstring) into ``folder``."""
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.astronaut())
    w, h = image.size
    mirror = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image.save(folder / "a0.png")
    mirror.save(folder / "a1_mirror.png")
    image.crop((13, 7, w - 40, h - 25)).save(folder / "a2_crop.png")
    image.resize((int(w * 0.83), int(h * 0.83)), Image.Resampling.LANCZOS).save(folder / "a3_small.png")
    image.rotate(6, resample=Image.Resampling.BICUBIC).save(folder / "a4_rot.png")
    mirror.crop((30, 20, w, h - 10)).rotate(-4, resample=Image.Resampling.BICUBIC).save(folder / "a5_mirror_rot.png")


def fit_variants(folder: Path, shadows: bool) -> dict[str, float]:
    """Fit the variants in ``folder`` → mean PSNR, face PSNR, ibug-68 error and seconds."""
    import numpy as np
    from PIL import Image

    from nextface_core.config import load_config
    from nextface_core.fitting import Fitter

    config = load_config(overrides={"run.device": "cpu", "run.model": "basel", "model.path": str(SFM),
                                    "run.max_resolution": 256, "plugins.render_vertex": {"shadows": shadows}})
    paths = sorted(folder.glob("*.png"))
    rows, seconds = [], 0.0
    for path in paths:  # one at a time: each fit is what `nextface fit` gives for that photo alone
        start = time.perf_counter()
        result = Fitter(config).fit([np.asarray(Image.open(path).convert("RGB"))], [path.stem])
        seconds += time.perf_counter() - start
        rows.append(result.metrics()[0])
    mean = lambda key: round(sum(float(r[key]) for r in rows) / len(rows), 2)  # noqa: E731
    return {"psnr_db": mean("psnr_db"), "psnr_face_db": mean("psnr_face_db"),
            "ibug68_error_iod_percent": mean("ibug68_error_iod_percent"), "fit_s": round(seconds / len(rows), 1)}


def run(quick: bool = False) -> dict[str, object]:
    figures = agreement(64 if quick else 256)
    if quick:
        return figures
    if not SFM.is_dir():
        raise FileNotFoundError(f"the real test model folder {SFM} is absent")
    from nextface_core.cache import empty_cache

    with empty_cache(), tempfile.TemporaryDirectory(prefix="nextface-bench-shadows-") as photos:
        variants(Path(photos))
        for shadows in (False, True):
            row = fit_variants(Path(photos), shadows)
            figures.update({f"astronaut6_{'on' if shadows else 'off'}_{k}": v for k, v in row.items()})
    figures["astronaut6_psnr_gain_db"] = round(figures["astronaut6_on_psnr_db"] - figures["astronaut6_off_psnr_db"], 2)
    return figures
