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
    ``colour``: sRGB of its overlay dots; ``layer``: overlays draw lower layers first;
    ``views``: ``(other schema, index tuples)`` pairs: each point of the other schema is the
    mean of these points of this one (MediaPipe's ibug68 view)."""

    name: str
    count: int
    eye_corners: tuple[int, int] | None
    colour: tuple[int, int, int]
    layer: int = 1
    views: tuple[tuple[str, tuple[tuple[int, ...], ...]], ...] = ()


#: MediaPipe face-mesh index(es) of each ibug 68-point landmark (0-based ibug order);
#: where two are given, the ibug point is their midpoint. Correspondence published by
#: Peizhi Yan, "Mediapipe_2_Dlib_Landmarks" (github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks,
#: mediapipe2dlib/mp2dlib.py, 2024); single indices are written twice here.
IBUG68_FROM_MEDIAPIPE: tuple[tuple[int, int], ...] = (
    # jaw, 0-16 (subject's right ear → chin → left ear)
    (127, 127), (234, 234), (93, 93), (132, 58), (58, 172), (136, 136), (150, 150), (176, 176), (152, 152),
    (400, 400), (379, 379), (365, 365), (397, 288), (361, 361), (323, 323), (454, 454), (356, 356),
    # right brow 17-21, left brow 22-26
    (70, 70), (63, 63), (105, 105), (66, 66), (107, 107),
    (336, 336), (296, 296), (334, 334), (293, 293), (300, 300),
    # nose bridge 27-30, nostrils 31-35
    (168, 6), (197, 195), (5, 5), (4, 4), (75, 75), (97, 97), (2, 2), (326, 326), (305, 305),
    # right eye 36-41, left eye 42-47
    (33, 33), (160, 160), (158, 158), (133, 133), (153, 153), (144, 144),
    (362, 362), (385, 385), (387, 387), (263, 263), (373, 373), (380, 380),
    # outer lips 48-59
    (61, 61), (39, 39), (37, 37), (0, 0), (267, 267), (269, 269), (291, 291),
    (321, 321), (314, 314), (17, 17), (84, 84), (91, 91),
    # inner lips 60-67
    (78, 78), (82, 82), (13, 13), (312, 312), (308, 308), (317, 317), (14, 14), (87, 87),
)


#: the 68-point iBUG / 300-W convention (0-based; the eye corners are points 37 and 46 in its 1-based numbering)
IBUG68 = LandmarkSchema("ibug68", 68, (36, 45), (0, 255, 0))
#: MediaPipe's 478-point face mesh with irises; dense, so drawn underneath the sparse schemas
MEDIAPIPE478 = LandmarkSchema("mediapipe478", 478, (33, 263), (0, 200, 255), layer=0,
                              views=(("ibug68", IBUG68_FROM_MEDIAPIPE),))

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


def view(name: str, other: str) -> tuple[tuple[int, ...], ...] | None:
    """How schema ``other``'s points are made from schema ``name``'s (index tuples averaged), or None."""
    schema = _SCHEMAS.get(name)
    return dict(schema.views).get(other) if schema else None


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
