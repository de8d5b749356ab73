"""NextFace core: hook specs, plugin registry, data contracts, math and the fit.

Plugins implement hooks with :data:`hookimpl`::

    from nextface_core import hookimpl

    @hookimpl
    def nextface_register_renderers(register):
        register("mine", MyRenderer, description="my renderer")
"""

from .errors import NextFaceError
from .plugins import PluginRegistry
from .project import Availability, hookimpl
from .version import __version__

__all__ = ["Availability", "NextFaceError", "PluginRegistry", "hookimpl", "__version__"]
