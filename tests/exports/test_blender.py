"""Real Blender (``--background --python``) imports a fit's mesh.glb and mesh.obj: the head
is its real size in metres, the diffuse map drives the base colour, and a render shows it."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("file", ["mesh.glb", "mesh.obj"])
def test_blender_imports_the_face_in_metres_textured(fit_out, blender, file) -> None:
    result, out = fit_out
    facts = blender(out / "face0" / file)
    vertices = result.vertices()[0].numpy() * 1e-3
    height = float(vertices[:, 1].max() - vertices[:, 1].min())  # model +Y up is Blender +Z
    width = float(vertices[:, 0].max() - vertices[:, 0].min())
    low, high = np.array(facts["bbox_min"]), np.array(facts["bbox_max"])
    assert high[2] - low[2] == pytest.approx(height, rel=1e-3), facts
    assert high[0] - low[0] == pytest.approx(width, rel=1e-3), facts
    assert 0.08 < high[2] - low[2] < 0.3  # a face, in metres
    assert facts["base_colour"] is not None, "no image texture on the base colour"
    if file == "mesh.obj":
        assert facts["base_colour"]["filepath"].endswith("diffuse.png")
    assert facts["base_colour"]["size"] == [result.config.texture.resolution] * 2
    assert facts["cameras"] == (1 if file == "mesh.glb" else 0)  # the glb carries the photo's camera
    assert facts["covered_fraction"] > 0.03, facts  # the render is not empty
    assert max(facts["covered_mean_rgb"]) > 0.05, facts
