"""The two backends' settings: the ``tenancy.storage.config`` block of the run config.

::

    tenancy:
      storage:
        backend: sqlite
        config: {path: /var/lib/ogx/tenancy.db}

    tenancy:
      storage:
        backend: postgres
        config: {dsn: "postgresql://ogx@db:5432/ogx", pool_size: 10}
        # or: {host: db, port: 5432, database: ogx, user: ogx, password: "..."}
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

TablePrefix = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,15}$"),
    Field(
        description="prefix of every table this backend creates (lower-case letters, digits, '_'; at most 16), "
        "so the tables never clash with OGX's own in a shared database",
    ),
]


class SqliteStorageConfig(BaseModel):
    """Settings of the ``sqlite`` backend: one database file (WAL mode), one process."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        min_length=1,
        description="database file (created with its directory if missing), or ':memory:' for a private "
        "in-memory database that lives as long as the backend",
    )
    table_prefix: TablePrefix = "tenancy_"
    busy_timeout_ms: int = Field(
        default=5000, ge=0, le=600_000, description="how long a writer waits for another writer's lock"
    )


class PostgresStorageConfig(BaseModel):
    """Settings of the ``postgres`` backend: a DSN, or host/port/database/user/password, and the pool."""

    model_config = ConfigDict(extra="forbid")

    dsn: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:port/database (replaces host, port, database, user, password)",
    )
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)
    database: str | None = Field(default=None, min_length=1)
    user: str = Field(default="postgres", min_length=1)
    password: SecretStr | None = None
    pool_size: int = Field(default=10, ge=1, le=1000, description="connections kept open per process")
    max_overflow: int = Field(default=10, ge=0, le=1000, description="extra connections allowed under load")
    table_prefix: TablePrefix = "tenancy_"

    @model_validator(mode="after")
    def _dsn_or_database(self) -> PostgresStorageConfig:
        if self.dsn is None and self.database is None:
            raise ValueError("give either 'dsn' or 'database' (with host, port, user, password as needed)")
        if self.dsn is not None:
            self.url()  # fail at start-up, not at first use
        return self

    def url(self) -> URL:
        """The SQLAlchemy URL (asyncpg driver). Errors never echo the DSN, which may hold a password."""
        if self.dsn is None:
            return URL.create(
                "postgresql+asyncpg",
                username=self.user,
                password=self.password.get_secret_value() if self.password else None,
                host=self.host,
                port=self.port,
                database=self.database,
            )
        try:
            url = make_url(self.dsn.get_secret_value())
        except (ArgumentError, ValueError):  # e.g. a port that is not a number; never echo the DSN
            raise ValueError("dsn: expected postgresql://user:password@host:port/database") from None
        if url.get_backend_name() not in ("postgresql", "postgres"):
            raise ValueError("dsn: expected a postgresql:// URL")
        if not url.database:
            raise ValueError("dsn: the URL names no database")
        return url.set(drivername="postgresql+asyncpg")
