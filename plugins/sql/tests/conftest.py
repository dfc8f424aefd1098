"""Fixtures: a backend per dialect (SQLite file, PostgreSQL database created and dropped per session).

The session creates its own PostgreSQL database on the server of ``OGX_TENANCY_TEST_PG_DSN`` and drops
it at the end; every test uses its own table prefix inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sql_fixtures import ADMIN_DSN, admin, open_backend, unique_prefix
from sqlalchemy.engine import make_url

from ogx_tenancy_sql import PostgresStorageConfig, SqlBackend, SqliteStorageConfig

DIALECTS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A PostgreSQL database of this test session (dropped afterwards)."""
    name = f"ogxt_sql_{uuid.uuid4().hex[:12]}"
    admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_DSN).set(database=name).render_as_string(hide_password=False)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=DIALECTS)
def dialect(request) -> str:
    return request.param


@pytest.fixture
def backend_config(dialect, tmp_path, request):
    """A function returning a fresh backend config: a new SQLite file, or a new table prefix in the
    session's PostgreSQL database (the same ``prefix`` reaches the same tables)."""
    dsn = request.getfixturevalue("pg_dsn") if dialect == "postgres" else None

    def make(prefix: str | None = None) -> SqliteStorageConfig | PostgresStorageConfig:
        prefix = prefix or unique_prefix()
        if dsn is None:
            return SqliteStorageConfig(path=str(tmp_path / f"{prefix}.db"), table_prefix=prefix)
        return PostgresStorageConfig(dsn=dsn, table_prefix=prefix, pool_size=4)

    return make


@pytest.fixture
async def backend(backend_config) -> AsyncIterator[SqlBackend]:
    b = await open_backend(backend_config())
    try:
        yield b
    finally:
        await b.close()
