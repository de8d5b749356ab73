"""Pytest fixtures for NextFace plugin tests.

Use them from a test module (``from nextface_core.testing.pytest_plugin import
nextface_registry, nextface_config``) or load the module for a whole test tree with
``pytest_plugins = ["nextface_core.testing.pytest_plugin"]`` in the root ``conftest.py``
(pytest allows ``pytest_plugins`` only there) or ``-p nextface_core.testing.pytest_plugin``.
"""

from __future__ import annotations

import pytest

from ..config import Config, load_config
from ..plugins import ENV_BLOCK, ENV_SELECT, PluginRegistry
from .kit import fresh_registry


@pytest.fixture
def nextface_registry(monkeypatch: pytest.MonkeyPatch) -> PluginRegistry:
    """A fresh registry with only the core plugin: no installed entry points, the
    NEXTFACE_PLUGINS / NEXTFACE_BLOCK_PLUGINS variables unset; add yours with
    ``registry.add("name", module)``."""
    monkeypatch.delenv(ENV_SELECT, raising=False)
    monkeypatch.delenv(ENV_BLOCK, raising=False)
    return fresh_registry()


@pytest.fixture
def nextface_config() -> Config:
    """The packaged default configuration (a new object per test)."""
    return load_config()
