"""Shared fixtures of the core tests."""

from __future__ import annotations

import pytest

from nextface_core.plugins import PluginRegistry
from nextface_core.synthetic import synthetic_model


@pytest.fixture
def empty_registry() -> PluginRegistry:
    """A fresh registry that loads no installed entry point."""
    return PluginRegistry(entry_points=False, builtin=False)


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    """The installed plugins, one registry per test module."""
    return PluginRegistry()


@pytest.fixture(scope="module")
def model():
    """The small synthetic face model (532 vertices), one per test module."""
    return synthetic_model("small")
