"""Helpers shared by the tests: the PostgreSQL admin connection, fresh table prefixes, opening backends.

PostgreSQL comes from ``OGX_TENANCY_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg

from ogx_tenancy_sql import (
    PostgresStorageConfig,
    SqlBackend,
    SqliteStorageConfig,
    open_postgres_backend,
    open_sqlite_backend,
)

ADMIN_DSN = os.environ.get("OGX_TENANCY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


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


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}_"


async def open_backend(config: SqliteStorageConfig | PostgresStorageConfig) -> SqlBackend:
    if isinstance(config, SqliteStorageConfig):
        return await open_sqlite_backend(config)
    return await open_postgres_backend(config)
