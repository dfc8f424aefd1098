"""Fixtures for the vllm_fairness tests. Plugins are registered explicitly, never from entry points,
except in the test that checks the entry point itself."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ogx_tenancy import host

# The repository's shared recording upstream (tests/support/upstream.py) stands in for vLLM.
_REPO_TESTS = Path(__file__).resolve().parents[3] / "tests"
if _REPO_TESTS.is_dir() and str(_REPO_TESTS) not in sys.path:
    sys.path.insert(0, str(_REPO_TESTS))


@pytest.fixture(autouse=True)
def _no_installed_host():
    host.install(None)
    yield
    host.install(None)

