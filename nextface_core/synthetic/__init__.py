"""Synthetic faces with known answers, for the demo, the plugin kit, tests and benchmarks.

- :mod:`.model`: a face-like morphable model in Basel conventions, built in memory
  (:func:`synthetic_model`, its arrays :func:`synthetic_arrays`);
- :mod:`.scene`: known scene parameters and their renders with exact landmarks
  (:func:`synthetic_scene`, :func:`render_synthetic`);
- :mod:`.dataset`: a folder of rendered faces, their landmark file and a config
  (:func:`~nextface_core.synthetic.dataset.write_synthetic_dataset`);
- :mod:`.reflectance`: a reflectance ground truth (diffuse detail, T-zone specular, smooth
  roughness, a 9-band light, a held-back view and light) and the figures of a fit against it
  (:func:`~nextface_core.synthetic.reflectance.reflectance_truth`,
  :func:`~nextface_core.synthetic.reflectance.evaluate_reflectance`);
- :mod:`.clip`: video frames with known per-frame parameters
  (:func:`~nextface_core.synthetic.clip.synthetic_clip`).

``size="small"`` models have a few hundred vertices (unit tests); ``size="full"`` the real
BFM sizes (28588 vertices, 56572 triangles, 199 shape / 100 expression / 199 colour and 145
albedo components) for benchmarks. The dataset, clip and reflectance modules are imported on their own
(they pull in the fit and the tracker).
"""

from .model import FULL_FACES, FULL_VERTICES, SyntheticArrays, synthetic_arrays, synthetic_model
from .scene import render_synthetic, synthetic_scene

__all__ = [
    "FULL_FACES",
    "FULL_VERTICES",
    "SyntheticArrays",
    "render_synthetic",
    "synthetic_arrays",
    "synthetic_model",
    "synthetic_scene",
]
