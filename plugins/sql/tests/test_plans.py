"""Listing cost follows the rows the caller can see, not the table: the query plans, not timings.

One tenant holds 20,000 rows of 200 owners (one team each). A member of one team, who also owns a
few rows, lists pages under OGX's default policy and under a custom one. On SQLite no step of the
plan may scan the rows table or walk a whole tenant's index; on PostgreSQL (EXPLAIN ANALYZE) the
rows table nodes together may touch only a small multiple of the rows the caller can see.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event

from ogx_tenancy import CollectionSpec, FieldSpec, Identity, Owner, Policy, acting_as, system_context

SPEC = CollectionSpec("plans", (FieldSpec("created_at", "int", indexed=True), FieldSpec("body", "str")))
ROWS, OWNERS = 20_000, 200
CALLER = Identity("member", {"teams": ["team7"], "roles": ["reader"]}, None)
POLICIES = {
    "default": [],
    "custom": [
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
        {"permit": {"actions": ["read"]}, "when": "user in owners teams"},
    ],
}
VISIBLE = ROWS // OWNERS + 3  # team7's rows and the caller's own


async def fill(backend):
    store = await backend.open_store(SPEC, Policy.default())
    with system_context("plan fixture"):
        await store.bulk_create(
            (
                (
                    f"r{i:05d}",
                    {"created_at": i, "body": "x"},
                    Owner(f"user{i % OWNERS}", {"teams": [f"team{i % OWNERS}"]}),
                )
                for i in range(ROWS)
            ),
            batch=10_000,
        )
    with acting_as(CALLER):
        for i in range(3):
            await store.create(f"own{i}", {"created_at": ROWS + i, "body": "mine"})
    if backend.dialect == "postgresql":  # what autovacuum does for a live database
        async with backend.engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).exec_driver_sql("VACUUM ANALYZE")


async def captured_listings(backend, store) -> list[tuple[str, object]]:
    """The SQL and parameters of the listings below, as the store sent them."""
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(backend.engine.sync_engine, "before_cursor_execute", capture)
    try:
        with acting_as(CALLER):
            for kwargs in ({"order_by": "created_at", "descending": True}, {}, {"order_by": "created_at"}):
                page = await store.list(limit=20, **kwargs)
                second = await store.list(limit=20, cursor=page.next_cursor, **kwargs)
                assert len(page.data) == len(second.data) == 20
                everything = await store.list(limit=1000, **kwargs)
                assert len(everything.data) == VISIBLE and not everything.has_more
    finally:
        event.remove(backend.engine.sync_engine, "before_cursor_execute", capture)
    return statements


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
async def test_listing_touches_what_the_caller_can_see(backend, policy_name):
    await fill(backend)
    store = await backend.open_store(SPEC, Policy.parse(POLICIES[policy_name]))
    table = store.rows_table.name
    statements = await captured_listings(backend, store)
    assert len(statements) == 9
    async with backend.engine.connect() as conn:
        for statement, parameters in statements:
            if backend.dialect == "sqlite":
                plan = [row[3] for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
                for step in plan:
                    assert not step.startswith(f"SCAN {table}"), plan
                    assert not step.endswith("(tenant_id=?)") or table not in step, plan  # a whole tenant
            else:
                explain = f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}"
                (document,) = (await conn.exec_driver_sql(explain, parameters)).one()
                nodes = list(_nodes((document if isinstance(document, list) else json.loads(document))[0]["Plan"]))
                on_rows = [n for n in nodes if n.get("Relation Name") == table]
                assert on_rows and not [n for n in on_rows if n["Node Type"] == "Seq Scan"], statement
                touched = sum(n["Actual Rows"] * n["Actual Loops"] for n in on_rows)
                assert touched <= 3 * VISIBLE, (touched, statement)


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)
