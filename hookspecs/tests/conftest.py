"""Core tests load plugins explicitly (pitfall 10): installed plugins never leak in."""

from __future__ import annotations

import pytest

from ogx_tenancy import host
from ogx_tenancy.manager import PluginManager


@pytest.fixture
def manager() -> PluginManager:
    return PluginManager()


@pytest.fixture(autouse=True)
def _no_installed_host():
    host.install(None)
    yield
    host.install(None)
