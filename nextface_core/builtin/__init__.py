"""The core's own plugin ``core``: what every NextFace installation provides without extra packages.

A plugin like any other: its hook implementations live in the modules of this package
(:mod:`.landmark_file`: the ``file`` detector; :mod:`.losses`: the standard loss terms;
:mod:`.stages`: the method's three fit stages), and
:class:`~nextface_core.plugins.PluginRegistry` registers this package under the name ``core``
through the same :meth:`~nextface_core.plugins.PluginRegistry.add` a test or an application uses.
"""

from .landmark_file import nextface_register_landmark_detectors
from .losses import nextface_register_losses
from .stages import nextface_register_stages

__all__ = ["nextface_register_landmark_detectors", "nextface_register_losses", "nextface_register_stages"]
