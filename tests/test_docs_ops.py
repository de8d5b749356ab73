"""Every public tensor op of the core's math modules documents its arguments and results
(Args/Returns with shapes), as nvdiffrast's ops do."""

from __future__ import annotations

import inspect

import pytest

from nextface_core import camera, color, mesh, raster, sh, shading, texture

#: the modules of public tensor ops
OP_MODULES = (camera, color, sh, texture, mesh, raster, shading)
NOT_OPS = {"check_frame"}  # a check of a model file's units and axes, not a tensor op


def public_ops() -> list[tuple[str, object]]:
    return [
        (f"{module.__name__}.{name}", fn)
        for module in OP_MODULES
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if fn.__module__ == module.__name__ and not name.startswith("_") and name not in NOT_OPS
    ]


def test_there_are_ops_to_check() -> None:
    assert len(public_ops()) >= 20


@pytest.mark.parametrize("name, fn", public_ops(), ids=[n for n, _ in public_ops()])
def test_every_public_op_has_args_and_returns(name: str, fn: object) -> None:
    doc = inspect.getdoc(fn) or ""
    assert "Args:" in doc and "Returns:" in doc, f"{name}: write Args: and Returns: sections"
    assert "[" in doc, f"{name}: state the shapes"
    for parameter in inspect.signature(fn).parameters:
        assert parameter in doc.split("Args:", 1)[1], f"{name}: document argument {parameter!r}"
