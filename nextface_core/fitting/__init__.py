"""The fit: three stages through any model, detector and renderer (see :mod:`.fitter`).

From Python::

    from nextface_core.config import load_config
    from nextface_core.fitting import Fitter

    result = Fitter(load_config()).fit([image_uint8])   # in memory, nothing written
    result.metrics(); result.textures(); result.vertices()
    save_result(result, "out/")                         # only when asked
"""

from .fitter import Fitter
from .outputs import save_result
from .result import Checkpoint, FitResult, StageReport

__all__ = ["Checkpoint", "FitResult", "Fitter", "StageReport", "save_result"]
