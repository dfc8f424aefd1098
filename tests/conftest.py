"""Fixtures shared by the cross-distribution tests."""

from __future__ import annotations

import os

import pytest
from support.ogx import OgxServer, base_run_config  # noqa: F401  (re-exported for tests)

PG_DSN = os.environ.get("OGX_TENANCY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_dsn() -> str:
    return PG_DSN
