"""Benchmark: ogx-tenancy-sql's stores beside OGX 1.5's AuthorizedSqlStore, same data, same run.

    python bench/sql_stores.py                       # 10k, 100k, 1M rows; SQLite and PostgreSQL; both policies
    python bench/sql_stores.py --quick               # 2k and 20k rows, fewer repetitions (a smoke run)
    python bench/sql_stores.py --sizes 10000 --backends sqlite --policies custom

The data is that of OGX's peer script (``/work/shared/bench/peer_ogx_abac.py``): rows ``r<i>`` spread
evenly over tenants (100 rows per tenant, at most 10,000 tenants); tenant ``t``'s rows are owned by
``user<t>`` with teams ``[team<t>]``. A caller is a member of a random tenant's team who owns none of
its rows (``member<r>``, teams ``[team<t>]``), so it reads through ``user in owners teams``. Policies:

* ``default`` — OGX's default policy (share on any common value, own, or unowned);
* ``custom`` — the peer's: owners may do everything, team members may read.

For every (backend, size, policy) it measures, on our store, on OGX's AuthorizedSqlStore (the peer
script's logic, run in this process on a table loaded with the same rows) and with the same SQL and no
access control at all (``WHERE tenant_id = t``, through the same engine):

* list a page of 20 (newest first), list all rows the caller may see (~100), get one row by id;
* insert throughput through each store's API (one row per call, the caller's own rows).

Our caller is in tenant ``t``; OGX's peer has no tenants (the notes measured it that way), so its
caller is the same user without one. The fixture rows are loaded through ``SqlStore.bulk_create``
(our documented bulk path) and OGX's base ``SqlStore.insert``; never through the timed paths. Timings
are medians over ``--reps`` calls (OGX at 1M rows is sampled: ``--ogx-reps``). Prints a table, writes
``bench/results/sql_stores.json`` and ``bench/results/sql_stores_list_latency.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ogx_tenancy import CollectionSpec, FieldSpec, Identity, Owner, Policy, acting_as, system_context
from ogx_tenancy_sql import PostgresStorageConfig, SqliteStorageConfig, open_postgres_backend, open_sqlite_backend

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ADMIN_DSN = os.environ.get("OGX_TENANCY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

# The peer script's CUSTOM_POLICY, in the run config's form.
CUSTOM_RULES = [
    {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
    {"permit": {"actions": ["read"]}, "when": "user in owners teams"},
]
POLICIES = {"default": [], "custom": CUSTOM_RULES}
SPEC = CollectionSpec("bench_items", (FieldSpec("created_at", "int", indexed=True), FieldSpec("body", "str")))
ROWS_PER_TENANT = 100
BODY = "x" * 64
_started = time.monotonic()


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the result table."""
    print(f"[sql_stores {time.monotonic() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


def tenants_for(rows: int) -> int:
    return max(1, min(10_000, rows // ROWS_PER_TENANT))


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 3)


def p95_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(0.95 * (len(ordered) - 1)))] * 1e3, 3)


async def once(call: Awaitable[Any]) -> tuple[float, Any]:
    """Seconds taken by one awaited call (a coroutine does no work until awaited), and its result."""
    start = time.perf_counter()
    result = await call
    return time.perf_counter() - start, result


# -- PostgreSQL databases ------------------------------------------------------------------------


async def create_database() -> str:
    name = f"ogxt_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# -- ours ----------------------------------------------------------------------------------------


def caller(index: int, tenants: int, rng: random.Random, *, with_tenant: bool) -> tuple[int, Identity]:
    tenant = rng.randrange(tenants)
    return tenant, Identity(f"member{index}", {"teams": [f"team{tenant}"]}, f"t{tenant}" if with_tenant else None)


async def bench_ours(backend_name: str, rows: int, policies: list[str], args: argparse.Namespace) -> list[dict]:
    tenants = tenants_for(rows)
    workdir = Path(tempfile.mkdtemp(prefix="ogxt-bench-"))
    database = None
    if backend_name == "sqlite":
        backend = await open_sqlite_backend(SqliteStorageConfig(path=str(workdir / "ours.db")))
    else:
        database = await create_database()
        dsn = make_url(ADMIN_DSN).set(database=database).render_as_string(hide_password=False)
        backend = await open_postgres_backend(PostgresStorageConfig(dsn=dsn, pool_size=16))
    results = []
    try:
        loader = await backend.open_store(SPEC, Policy.default())
        progress(f"ours/{backend_name}: loading {rows} rows over {tenants} tenants (bulk_create)")
        start = time.perf_counter()

        def fixture():
            for i in range(rows):
                t = i % tenants
                yield f"r{i}", {"created_at": i, "body": BODY}, Owner(f"user{t}", {"teams": [f"team{t}"]}, f"t{t}")

        with system_context("benchmark fixture"):
            await loader.bulk_create(fixture(), batch=20_000)
        async with backend.engine.begin() as conn:
            await conn.execute(sa.text("ANALYZE"))
        load_s = time.perf_counter() - start
        progress(f"ours/{backend_name}: loaded in {load_s:.1f}s")
        table = loader.rows_table  # the no-access-control baseline queries the same table directly
        for policy_name in policies:
            store = await backend.open_store(SPEC, Policy.parse(POLICIES[policy_name]))
            rng = random.Random(7)
            page_s, all_s, get_s, plain_page_s, plain_all_s, plain_get_s = [], [], [], [], [], []
            returned_page, returned_all, found = [], [], []
            for index in range(args.reps):
                t, identity = caller(index, tenants, rng, with_tenant=True)
                with acting_as(identity):
                    seconds, page = await once(store.list(order_by="created_at", descending=True, limit=20))
                    page_s.append(seconds)
                    returned_page.append(len(page.data))
                    seconds, everything = await once(store.list(order_by="created_at", descending=True, limit=1000))
                    all_s.append(seconds)
                    returned_all.append(len(everything.data))
                    seconds, row = await once(store.get(f"r{t}"))
                    get_s.append(seconds)
                    found.append(row is not None)
                plain_page_s.append((await once(plain_list(backend, table, f"t{t}", 20)))[0])
                plain_all_s.append((await once(plain_list(backend, table, f"t{t}", 1000)))[0])
                plain_get_s.append((await once(plain_get(backend, table, f"t{t}", f"r{t}")))[0])
            insert = await insert_rate(backend, store, args.inserts, policy_name)
            expected_all = rows // tenants
            results.append(
                {
                    "system": "ours",
                    "backend": backend_name,
                    "policy": policy_name,
                    "rows": rows,
                    "tenants": tenants,
                    "load_s": round(load_s, 2),
                    "list20_median_ms": median_ms(page_s),
                    "list20_p95_ms": p95_ms(page_s),
                    "list_all_median_ms": median_ms(all_s),
                    "list_all_p95_ms": p95_ms(all_s),
                    "get_median_ms": median_ms(get_s),
                    "plain_list20_median_ms": median_ms(plain_page_s),
                    "plain_list_all_median_ms": median_ms(plain_all_s),
                    "plain_get_median_ms": median_ms(plain_get_s),
                    "list20_rows_min": min(returned_page),
                    "list20_rows_expected": min(20, expected_all),
                    "list_all_rows_min": min(returned_all),
                    "list_all_rows_expected": expected_all,
                    "get_found_all": all(found),
                    **insert,
                }
            )
            progress(f"ours/{backend_name}/{policy_name}/{rows}: {json.dumps(results[-1])}")
    finally:
        await backend.close()
        if database:
            await drop_database(database)
    return results


async def plain_list(backend, table: sa.Table, tenant: str, limit: int) -> list:
    """The same listing with no access control: the tenant's newest rows."""
    query = (
        sa.select(*table.c)
        .where(table.c.tenant_id == tenant)
        .order_by(table.c.created_at.desc(), table.c.id.desc())
        .limit(limit + 1)
    )
    async with backend.connection() as conn:
        return (await conn.execute(query)).all()


async def plain_get(backend, table: sa.Table, tenant: str, row_id: str) -> Any:
    async with backend.connection() as conn:
        return (
            await conn.execute(sa.select(*table.c).where(table.c.tenant_id == tenant, table.c.id == row_id))
        ).first()


async def insert_rate(backend, store, count: int, policy_name: str) -> dict:
    """Rows per second through ``store.create``: one call at a time (each its own commit), from 16
    concurrent callers, and 100 creates per ``transaction()``; beside the same single-row INSERT
    with no access control (precomputed owner columns, same engine, one commit per row)."""
    table = store.rows_table
    writer = Identity(f"writer-{policy_name}", {"teams": ["team0"]}, "t0")
    with acting_as(writer):
        start = time.perf_counter()
        for i in range(count):
            await store.create(f"seq-{policy_name}-{i}", {"created_at": i, "body": BODY})
        sequential = count / (time.perf_counter() - start)

        async def caller(c: int) -> None:
            for i in range(count // 16):
                await store.create(f"par-{policy_name}-{c}-{i}", {"created_at": i, "body": BODY})

        start = time.perf_counter()
        await asyncio.gather(*(caller(c) for c in range(16)))
        concurrent = (count // 16 * 16) / (time.perf_counter() - start)
        start = time.perf_counter()
        for batch in range(count // 100):
            async with store.transaction():
                for i in range(100):
                    await store.create(f"tx-{policy_name}-{batch}-{i}", {"created_at": i, "body": BODY})
        batched = (count // 100 * 100) / (time.perf_counter() - start)
    insert = sa.insert(table)
    start = time.perf_counter()
    for i in range(count):
        record = {
            "tenant_id": "t0",
            "id": f"plain-{policy_name}-{i}",
            "owner_principal": writer.principal,
            "access_attributes": {"teams": ["team0"]},
            "revision": 1,
            "created_at": i,
            "body": BODY,
        }
        async with backend.connection() as conn:
            await conn.execute(insert, record)
    plain = count / (time.perf_counter() - start)
    return {
        "insert_rows_per_s": round(sequential),
        "insert_16_callers_rows_per_s": round(concurrent),
        "insert_tx100_rows_per_s": round(batched),
        "plain_insert_rows_per_s": round(plain),
    }


# -- OGX 1.5's AuthorizedSqlStore (the peer script's logic) --------------------------------------


async def bench_ogx(backend_name: str, rows: int, policies: list[str], args: argparse.Namespace) -> list[dict]:
    from ogx.core.access_control.access_control import default_policy
    from ogx.core.access_control.datatypes import AccessRule
    from ogx.core.datatypes import User
    from ogx.core.request_headers import request_provider_data_context
    from ogx.core.storage.datatypes import PostgresSqlStoreConfig, SqliteSqlStoreConfig
    from ogx.core.storage.sqlstore.authorized_sqlstore import AuthorizedSqlStore
    from ogx.core.storage.sqlstore.sqlalchemy_sqlstore import SqlAlchemySqlStoreImpl
    from ogx_api.internal.sqlstore import ColumnDefinition, ColumnType

    tenants = tenants_for(rows)
    database = None
    if backend_name == "sqlite":
        config: Any = SqliteSqlStoreConfig(db_path=str(Path(tempfile.mkdtemp(prefix="ogxt-bench-")) / "peer.db"))
    else:
        database = await create_database()
        url = make_url(ADMIN_DSN)
        config = PostgresSqlStoreConfig(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            db=database,
            user=url.username or "postgres",
            password=url.password or "postgres",
        )
    base = SqlAlchemySqlStoreImpl(config)
    results = []
    try:
        table = "peer_items"
        schema = {
            "id": ColumnDefinition(type=ColumnType.STRING, primary_key=True),
            "created_at": ColumnType.INTEGER,
            "body": ColumnType.TEXT,
        }
        await AuthorizedSqlStore(base, default_policy()).create_table(table, schema)
        progress(f"ogx/{backend_name}: loading {rows} rows (base SqlStore.insert, as the peer script)")
        start = time.perf_counter()
        batch = []
        for i in range(rows):
            t = i % tenants
            batch.append(
                {
                    "id": f"r{i}",
                    "created_at": i,
                    "body": BODY,
                    "owner_principal": f"user{t}",
                    "access_attributes": {"teams": [f"team{t}"]},
                }
            )
            if len(batch) == 5000:
                await base.insert(table, batch)
                batch = []
        if batch:
            await base.insert(table, batch)
        load_s = time.perf_counter() - start
        progress(f"ogx/{backend_name}: loaded in {load_s:.1f}s")
        reps = args.ogx_reps if rows >= 1_000_000 else min(args.reps, max(args.ogx_reps, 2_000_000 // rows))
        for policy_name in policies:
            policy = default_policy() if policy_name == "default" else [AccessRule(**r) for r in CUSTOM_RULES]
            store = AuthorizedSqlStore(base, policy)
            rng = random.Random(7)
            page_s, all_s, get_s, returned_page, returned_all, found = [], [], [], [], [], []
            for index in range(reps):
                t, identity = caller(index, tenants, rng, with_tenant=False)
                user = User(principal=identity.principal, attributes=identity.attributes_as_lists())
                with request_provider_data_context({}, user):
                    seconds, page = await once(store.fetch_all(table, limit=20, order_by=[("created_at", "desc")]))
                    page_s.append(seconds)
                    returned_page.append(len(page.data))
                    seconds, everything = await once(store.fetch_all(table, order_by=[("created_at", "desc")]))
                    all_s.append(seconds)
                    returned_all.append(len(everything.data))
                    seconds, row = await once(store.fetch_one(table, where={"id": f"r{t}"}))
                    get_s.append(seconds)
                    found.append(row is not None)
            writer = User(principal=f"writer-{policy_name}", attributes={"teams": ["team0"]})
            with request_provider_data_context({}, writer):
                start = time.perf_counter()
                for i in range(args.inserts):
                    await store.insert(table, {"id": f"seq-{policy_name}-{i}", "created_at": i, "body": BODY})
                insert_rate_s = args.inserts / (time.perf_counter() - start)
            expected_all = rows // tenants
            results.append(
                {
                    "system": "ogx-1.5 AuthorizedSqlStore",
                    "backend": backend_name,
                    "policy": policy_name,
                    "rows": rows,
                    "tenants": tenants,
                    "load_s": round(load_s, 2),
                    "reps": reps,
                    "list20_median_ms": median_ms(page_s),
                    "list20_p95_ms": p95_ms(page_s),
                    "list_all_median_ms": median_ms(all_s),
                    "list_all_p95_ms": p95_ms(all_s),
                    "get_median_ms": median_ms(get_s),
                    "list20_rows_min": min(returned_page),
                    "list20_rows_expected": min(20, expected_all),
                    "list_all_rows_min": min(returned_all),
                    "list_all_rows_expected": expected_all,
                    "get_found_all": all(found),
                    "insert_rows_per_s": round(insert_rate_s),
                }
            )
            progress(f"ogx/{backend_name}/{policy_name}/{rows}: {json.dumps(results[-1])}")
    finally:
        if base._engine is not None:  # OGX's store has no close(); free its pool before dropping the database
            await base._engine.dispose()
        if database:
            await drop_database(database)
    return results


# -- report --------------------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    """One line per (backend, policy, size): ours, no access control, OGX; then the targets' verdicts."""
    header = (
        f"{'backend':8} {'policy':7} {'rows':>8} | {'list20 ms':>9} {'noAC':>6} {'OGX':>8} {'OGX rows':>8} | "
        f"{'all ms':>7} {'noAC':>6} {'OGX':>8} {'OGX rows':>8} | {'get ms':>6} {'noAC':>6} {'OGX':>7} | "
        f"{'insert/s':>8} {'noAC':>6} {'16 callers':>10} {'tx of 100':>9} {'OGX':>6}"
    )
    lines = [header, "-" * len(header)]
    ours = [r for r in results if r["system"] == "ours"]
    ogx = {(r["backend"], r["policy"], r["rows"]): r for r in results if r["system"] != "ours"}
    for r in sorted(ours, key=lambda r: (r["backend"], r["policy"], r["rows"])):
        o = ogx.get((r["backend"], r["policy"], r["rows"]), {})

        def cell(key: str, width: int, source: dict = o) -> str:
            value = source.get(key)
            return f"{value:>{width}}" if value is not None else f"{'-':>{width}}"

        ogx_rows20 = f"{o['list20_rows_min']}/{o['list20_rows_expected']}" if o else "-"
        ogx_rows_all = f"{o['list_all_rows_min']}/{o['list_all_rows_expected']}" if o else "-"
        lines.append(
            f"{r['backend']:8} {r['policy']:7} {r['rows']:>8} | {r['list20_median_ms']:>9} "
            f"{r['plain_list20_median_ms']:>6} {cell('list20_median_ms', 8)} {ogx_rows20:>8} | "
            f"{r['list_all_median_ms']:>7} {r['plain_list_all_median_ms']:>6} {cell('list_all_median_ms', 8)} "
            f"{ogx_rows_all:>8} | {r['get_median_ms']:>6} {r['plain_get_median_ms']:>6} {cell('get_median_ms', 7)} | "
            f"{r['insert_rows_per_s']:>8} {r['plain_insert_rows_per_s']:>6} {r['insert_16_callers_rows_per_s']:>10} "
            f"{r['insert_tx100_rows_per_s']:>9} {cell('insert_rows_per_s', 6)}"
        )
    lines.append("")
    lines.append("ms = median latency; noAC = the same query without access control; OGX rows = fewest rows OGX")
    lines.append("returned / rows the caller may see (ours always returned all: see the checks below).")
    lines.append("insert/s: one create per call, each its own commit; noAC: the same single-row INSERT without access")
    lines.append(
        "control; 16 callers: concurrent creates; tx of 100: 100 creates per transaction(); OGX: one insert per call."
    )
    return "\n".join(lines)


def verdicts(results: list[dict]) -> list[str]:
    """The issue's targets, checked on this run's figures."""
    out = []
    ours = [r for r in results if r["system"] == "ours"]
    for r in ours:
        ok_rows = (
            r["list20_rows_min"] == r["list20_rows_expected"]
            and r["list_all_rows_min"] == r["list_all_rows_expected"]
            and r["get_found_all"]
        )
        out.append(
            f"{r['backend']}/{r['policy']}/{r['rows']}: complete results {'yes' if ok_rows else 'NO'}; "
            f"list20 {r['list20_median_ms']} ms ({r['list20_median_ms'] / r['plain_list20_median_ms']:.2f}x no-AC), "
            f"list all {r['list_all_median_ms']} ms ({r['list_all_median_ms'] / r['plain_list_all_median_ms']:.2f}x "
            f"no-AC), insert {r['insert_rows_per_s']}/s"
        )
    for backend in sorted({r["backend"] for r in ours}):
        for policy in sorted({r["policy"] for r in ours}):
            series = sorted(
                (r for r in ours if r["backend"] == backend and r["policy"] == policy), key=lambda r: r["rows"]
            )
            if len(series) >= 2:
                small, large = series[0], series[-1]
                out.append(
                    f"{backend}/{policy}: list20 growth {small['rows']}->{large['rows']} rows "
                    f"{large['list20_median_ms'] / small['list20_median_ms']:.2f}x, list all "
                    f"{large['list_all_median_ms'] / small['list_all_median_ms']:.2f}x"
                )
    return out


def chart(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, metric, title in (
        (axes[0], "list20_median_ms", "list a page of 20"),
        (axes[1], "list_all_median_ms", "list all visible rows (~100)"),
    ):
        for system, style in (("ours", "-o"), ("ogx-1.5 AuthorizedSqlStore", "--s")):
            for backend in sorted({r["backend"] for r in results}):
                for policy in sorted({r["policy"] for r in results}):
                    series = sorted(
                        (r for r in results if (r["system"], r["backend"], r["policy"]) == (system, backend, policy)),
                        key=lambda r: r["rows"],
                    )
                    if series:
                        label = f"{'ours' if system == 'ours' else 'OGX 1.5'} {backend} {policy}"
                        ax.plot([r["rows"] for r in series], [r[metric] for r in series], style, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows in the table")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("median latency (ms)")
    axes[1].legend(fontsize=7)
    fig.suptitle("ogx-tenancy-sql vs OGX 1.5 AuthorizedSqlStore: list latency against table size")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated row counts")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--policies", default="default,custom", help="comma-separated: default, custom")
    parser.add_argument("--reps", type=int, default=200, help="calls per measurement (ours, no-AC, and OGX below 1M)")
    parser.add_argument("--ogx-reps", type=int, default=5, help="calls per OGX measurement at 1M rows and more")
    parser.add_argument("--inserts", type=int, default=2000, help="rows inserted per insert-throughput measurement")
    parser.add_argument("--no-ogx", action="store_true", help="skip OGX's AuthorizedSqlStore (no ogx installed)")
    parser.add_argument("--quick", action="store_true", help="sizes 2000,20000, 50 reps, 400 inserts")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.reps, args.ogx_reps, args.inserts = "2000,20000", 50, 3, 400
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = [b for b in args.backends.split(",") if b]
    policies = [p for p in args.policies.split(",") if p]
    for name in policies:
        if name not in POLICIES:
            parser.error(f"unknown policy {name!r} (expected default or custom)")
    for name in backends:
        if name not in ("sqlite", "postgres"):
            parser.error(f"unknown backend {name!r} (expected sqlite or postgres)")
    results: list[dict] = []
    for backend_name in backends:
        for rows in sizes:
            results += await bench_ours(backend_name, rows, policies, args)
            if not args.no_ogx:
                results += await bench_ogx(backend_name, rows, policies, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sql_stores.json").write_text(
        json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=2)
    )
    chart(results, args.out / "sql_stores_list_latency.png")
    print(table(results))
    print()
    print("\n".join(verdicts(results)))
    print(f"\nwritten: {args.out / 'sql_stores.json'}, {args.out / 'sql_stores_list_latency.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
