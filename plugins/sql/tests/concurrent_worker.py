"""One of two processes writing to one PostgreSQL database at once (run by test_concurrency.py).

    python concurrent_worker.py DSN TABLE_PREFIX WORKER START_AT INCREMENTS

Increments the shared counter row INCREMENTS times (read, then update with expected_revision,
retrying on RowConflict) and tries to create the ids k000..k199 (the other process tries the same
ones). Prints one JSON line: increments done, conflicts retried, ids created, ids refused.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from ogx_tenancy import CollectionSpec, FieldSpec, Identity, Policy, RowConflict, acting_as
from ogx_tenancy_sql import PostgresStorageConfig, open_postgres_backend

SPEC = CollectionSpec("shared", (FieldSpec("slug", "str"), FieldSpec("rank", "int")), unique=(("slug",),))
WRITER = Identity("writer", {"teams": ["ops"]}, "t1")


async def main(dsn: str, prefix: str, worker: str, start_at: float, increments: int) -> dict:
    backend = await open_postgres_backend(PostgresStorageConfig(dsn=dsn, table_prefix=prefix, pool_size=4))
    try:
        store = await backend.open_store(SPEC, Policy.default())
        await asyncio.sleep(max(0.0, start_at - time.time()))
        done = retried = created = refused = 0
        with acting_as(WRITER):

            async def increment() -> None:
                nonlocal done, retried
                for _ in range(increments):
                    while True:
                        row = await store.get("counter")
                        try:
                            await store.update("counter", {"rank": row["rank"] + 1}, expected_revision=row.revision)
                            done += 1
                            break
                        except RowConflict:
                            retried += 1

            async def create() -> None:
                nonlocal created, refused
                order = range(200) if worker == "a" else reversed(range(200))
                for i in order:
                    try:
                        await store.create(f"k{i:03d}", {"slug": f"slug-{i:03d}", "rank": i})
                        created += 1
                    except RowConflict:
                        refused += 1

            await asyncio.gather(increment(), increment(), create())
        return {"worker": worker, "done": done, "retried": retried, "created": created, "refused": refused}
    finally:
        await backend.close()


if __name__ == "__main__":
    dsn, prefix, worker, start_at, increments = sys.argv[1:6]
    print(json.dumps(asyncio.run(main(dsn, prefix, worker, float(start_at), int(increments)))))
