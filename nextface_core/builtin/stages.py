"""Built-in fit stages: the method's landmarks → photometric → maps."""

from __future__ import annotations

from ..project import hookimpl


@hookimpl
def nextface_register_stages(register) -> None:
    from ..fitting.stages.landmarks import LandmarkStage
    from ..fitting.stages.maps import MapStage
    from ..fitting.stages.photometric import PhotometricStage

    for stage in (LandmarkStage, PhotometricStage, MapStage):
        register(stage.name, lambda config, stage=stage: stage(), description=(stage.__doc__ or "").split("\n")[0])
