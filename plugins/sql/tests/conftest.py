"""Fixtures: a backend per dialect (SQLite file, PostgreSQL database created and dropped per session).

PostgreSQL comes from ``OGX_TENANCY_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
the session creates its own database there and drops it at the end, and every test uses its own
table prefix inside it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from ogx_tenancy_sql import (
    PostgresStorageConfig,
    SqlBackend,
    SqliteStorageConfig,
    open_postgres_backend,
    open_sqlite_backend,
)

ADMIN_DSN = os.environ.get("OGX_TENANCY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

DIALECTS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


async def _admin_async(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def admin(sql: str) -> None:
    """Run one statement on the admin database (in a thread: callers may be inside an event loop)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin_async(sql)).result()


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A PostgreSQL database of this test session (dropped afterwards)."""
    name = f"ogxt_sql_{uuid.uuid4().hex[:12]}"
    admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_DSN).set(database=name).render_as_string(hide_password=False)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}_"


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


async def open_backend(config: SqliteStorageConfig | PostgresStorageConfig) -> SqlBackend:
    if isinstance(config, SqliteStorageConfig):
        return await open_sqlite_backend(config)
    return await open_postgres_backend(config)


@pytest.fixture
async def backend(backend_config) -> AsyncIterator[SqlBackend]:
    b = await open_backend(backend_config())
    try:
        yield b
    finally:
        await b.close()
