"""Shared fixtures of the core tests."""

from __future__ import annotations

import pytest

from nextface_core.plugins import PluginRegistry


@pytest.fixture
def empty_registry() -> PluginRegistry:
    """A fresh registry that loads no installed entry point."""
    return PluginRegistry(entry_points=False, builtin=False)
