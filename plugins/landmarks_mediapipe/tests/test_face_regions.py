"""The core's face-mask polygons for ``mediapipe478`` are MediaPipe's own connection tables."""

from __future__ import annotations

import pytest

from nextface_core.face_mask import MEDIAPIPE478_REGIONS


def _edges(loop: tuple[int, ...]) -> set[frozenset[int]]:
    return {frozenset((a, b)) for a, b in zip(loop, loop[1:] + loop[:1])}


def test_region_loops_match_the_installed_mediapipe_connection_tables() -> None:
    connections = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")

    def table(name: str) -> set[frozenset[int]]:
        return {frozenset(e) for e in getattr(connections, name)}

    r = MEDIAPIPE478_REGIONS
    assert _edges(r.oval) == table("FACEMESH_FACE_OVAL")
    assert _edges(r.eyes[0]) == table("FACEMESH_RIGHT_EYE") and _edges(r.eyes[1]) == table("FACEMESH_LEFT_EYE")
    assert _edges(r.mouth) <= table("FACEMESH_LIPS") and len(r.mouth) == 20  # the inner of its two loops
    assert 13 in r.mouth and 0 not in r.mouth  # inner upper lip, not the outer one
