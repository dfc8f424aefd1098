"""The ``sql`` plugin: registers the ``sqlite`` and ``postgres`` storage backends."""

from __future__ import annotations

from ogx_tenancy import hookimpl
from ogx_tenancy.store import BackendRegistrar

from .backend import open_postgres_backend, open_sqlite_backend
from .config import PostgresStorageConfig, SqliteStorageConfig


@hookimpl
def ogx_tenancy_storage_backends(register: BackendRegistrar) -> None:
    """``sqlite`` (aiosqlite, one file) and ``postgres`` (asyncpg pool), both on SQLAlchemy 2 async Core."""
    register("sqlite", SqliteStorageConfig, open_sqlite_backend)
    register("postgres", PostgresStorageConfig, open_postgres_backend)
