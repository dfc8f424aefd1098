"""Row-level ABAC stores on SQLite and PostgreSQL for ogx-tenancy.

Installed, this distribution registers the storage backends ``sqlite`` and ``postgres`` (entry
point ``sql`` in group ``ogx_tenancy``). Select one in the run config::

    tenancy:
      storage: {backend: sqlite, config: {path: /var/lib/ogx/tenancy.db}}

Services open stores through ``ogx_tenancy.open_store(CollectionSpec(...))``; tests and tools may
open a backend directly with ``open_sqlite_backend`` / ``open_postgres_backend``.
"""

from .backend import SqlBackend, open_postgres_backend, open_sqlite_backend
from .config import PostgresStorageConfig, SqliteStorageConfig
from .schema import LAYOUT_VERSION, SchemaError
from .store import SqlStore

__all__ = [
    "LAYOUT_VERSION",
    "PostgresStorageConfig",
    "SchemaError",
    "SqlBackend",
    "SqlStore",
    "SqliteStorageConfig",
    "open_postgres_backend",
    "open_sqlite_backend",
]
