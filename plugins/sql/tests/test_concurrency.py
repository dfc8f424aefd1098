"""Two processes writing to one PostgreSQL database at once: no lost update, no duplicate key.

Each process (concurrent_worker.py) runs two tasks incrementing one counter row by read-then-update
with ``expected_revision`` (retrying on ``RowConflict``), while a third task creates the ids that
the other process creates too, from the other end. Every increment must survive, and every id
must exist exactly once, the losers having got ``RowConflict`` — never an integrity error.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sql_fixtures import unique_prefix

from ogx_tenancy import Policy, acting_as, system_context
from ogx_tenancy_sql import PostgresStorageConfig, open_postgres_backend

WORKER = Path(__file__).with_name("concurrent_worker.py")
INCREMENTS = 40  # per task; two tasks per process, two processes


@pytest.mark.postgres
async def test_two_processes_lose_no_update_and_duplicate_no_key(pg_dsn):
    sys.path.insert(0, str(WORKER.parent))
    from concurrent_worker import SPEC, WRITER

    prefix = unique_prefix()
    backend = await open_postgres_backend(PostgresStorageConfig(dsn=pg_dsn, table_prefix=prefix, pool_size=2))
    try:
        store = await backend.open_store(SPEC, Policy.default())
        with acting_as(WRITER):
            await store.create("counter", {"slug": "counter", "rank": 0})
        start_at = time.time() + 4  # both processes open their pools first, then start together
        processes = [
            subprocess.Popen(
                [sys.executable, str(WORKER), pg_dsn, prefix, worker, str(start_at), str(INCREMENTS)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for worker in ("a", "b")
        ]
        reports = []
        for process in processes:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-3000:]
            reports.append(json.loads(out.strip().splitlines()[-1]))
        with acting_as(WRITER):
            counter = await store.get("counter")
        assert sum(r["done"] for r in reports) == 4 * INCREMENTS
        assert counter["rank"] == 4 * INCREMENTS, (counter, reports)  # no lost update
        assert counter.revision == 4 * INCREMENTS + 1
        assert sum(r["retried"] for r in reports) > 0  # the two processes did collide
        assert sum(r["created"] for r in reports) == 200 and sum(r["refused"] for r in reports) == 200
        with system_context("check"):
            rows = (await store.list(limit=1000)).data
        ids = [r.id for r in rows]
        assert len(ids) == len(set(ids)) == 201
    finally:
        await backend.close()
