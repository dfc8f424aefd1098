"""This plugin's declaration for the conformance suite (entry-point group ``ogx_tenancy_conformance``).

Loaded only by ``ogx-tenancy-conformance plugin sql``. Each test gets a fresh database: a SQLite file
in the test's directory, or a PostgreSQL database with a random name on the server named by
``OGX_TENANCY_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``), dropped after.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ogx_tenancy import StoreCapabilities
from ogx_tenancy_conformance import ConformanceProfile, StorageHarness

from .compile import PUSHDOWN

PG_DSN = os.environ.get("OGX_TENANCY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
_PUSHDOWN = frozenset(t.__name__ for t in PUSHDOWN)


class SqlStorageHarness(StorageHarness):
    backends = ("sqlite", "postgres")
    expected_capabilities = {
        "sqlite": StoreCapabilities(transactions=True, concurrent_processes=False, pushdown=_PUSHDOWN, persistent=True),
        "postgres": StoreCapabilities(
            transactions=True, concurrent_processes=True, pushdown=_PUSHDOWN, persistent=True
        ),
    }

    @contextlib.asynccontextmanager
    async def backend_config(self, backend: str, workdir: Path) -> AsyncIterator[Mapping[str, Any]]:
        if backend == "sqlite":
            yield {"path": str(workdir / "conformance.db")}
            return
        import asyncpg

        url = make_url(PG_DSN)
        database = f"conformance_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(
            host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database
        )
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
            yield {"dsn": url.set(drivername="postgresql", database=database).render_as_string(hide_password=False)}
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.close()

    async def raw_rows(self, backend: str, backend_object: Any, collection: str) -> list[Mapping[str, Any]] | None:
        table = f"{backend_object.table_prefix}{collection}"
        async with backend_object.engine.connect() as conn:
            result = await conn.execute(sa.text(f'SELECT id, owner_principal, tenant_id FROM "{table}"'))
            return [dict(row._mapping) for row in result]


class Profile(ConformanceProfile):
    storage = SqlStorageHarness
