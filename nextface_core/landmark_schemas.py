"""Landmark schemas as records: what a schema name means to the core, in one place.

A :class:`LandmarkSchema` holds a schema's point count (checked when landmark files are
read), its outer eye corners (for the inter-ocular distance of the fit's landmark error) and
how overlays draw it (colour, layer). The two standard schemas are registered here;
a plugin bringing another schema registers its record with :func:`register_schema` (e.g.
from its registration hook). Unregistered names stay usable: any consistent point count,
no inter-ocular distance, drawn in :data:`OTHER_COLOUR`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: overlay colour of a schema without a record
OTHER_COLOUR = (255, 0, 255)


@dataclass(frozen=True)
class LandmarkSchema:
    """``name`` as in :attr:`LandmarkSet.schema`; ``count`` points; ``eye_corners``: indices of
    the subject's outer right and left eye corners (None: no inter-ocular distance);
    ``colour``: sRGB of its overlay dots; ``layer``: overlays draw lower layers first."""

    name: str
    count: int
    eye_corners: tuple[int, int] | None
    colour: tuple[int, int, int]
    layer: int = 1


#: the 68-point iBUG / 300-W convention (0-based; the eye corners are points 37 and 46 in its 1-based numbering)
IBUG68 = LandmarkSchema("ibug68", 68, (36, 45), (0, 255, 0))
#: MediaPipe's 478-point face mesh with irises; dense, so drawn underneath the sparse schemas
MEDIAPIPE478 = LandmarkSchema("mediapipe478", 478, (33, 263), (0, 200, 255), layer=0)

_SCHEMAS: dict[str, LandmarkSchema] = {}


def register_schema(schema: LandmarkSchema) -> None:
    """Add ``schema``; registering an identical record again is a no-op, a different record
    under a taken name a ``ValueError``."""
    known = _SCHEMAS.get(schema.name)
    if known is not None and known != schema:
        raise ValueError(f"landmark schema {schema.name!r} is already registered as {known}")
    _SCHEMAS[schema.name] = schema


def landmark_schema(name: str) -> LandmarkSchema | None:
    """The record of schema ``name``, or None when no one registered it."""
    return _SCHEMAS.get(name)


def point_count(name: str) -> int | None:
    """The number of points of schema ``name`` (None: not registered, any count goes)."""
    schema = _SCHEMAS.get(name)
    return schema.count if schema else None


def eye_corners(name: str) -> tuple[int, int] | None:
    """Outer eye-corner indices of schema ``name``, for the inter-ocular distance (or None)."""
    schema = _SCHEMAS.get(name)
    return schema.eye_corners if schema else None


def colour(name: str) -> tuple[int, int, int]:
    """Overlay colour of schema ``name``."""
    schema = _SCHEMAS.get(name)
    return schema.colour if schema else OTHER_COLOUR


def layer(name: str) -> int:
    """Overlay layer of schema ``name`` (lower layers are drawn first)."""
    schema = _SCHEMAS.get(name)
    return schema.layer if schema else 1


register_schema(IBUG68)
register_schema(MEDIAPIPE478)
