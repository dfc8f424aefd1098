"""Listing cost follows the rows the caller can see, not the table: the query plans, not timings.

One tenant holds 20,000 rows of 200 owners (one team each). A member of one team, who also owns a
few rows, lists pages under OGX's default policy and under a custom one. On SQLite no step of the
plan may scan the rows table or walk a whole tenant's index; on PostgreSQL (EXPLAIN ANALYZE) the
rows table nodes together may touch only a small multiple of the rows the caller can see.
"""

from __future__ import annotations

import json

import pytest

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
PROBE_MAX = 256  # ogx_tenancy_sql.store._PROBE_MAX


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


async def captured_listings(backend, store, monkeypatch) -> list[tuple[str, tuple]]:
    """The SQL and arguments of the listings below, as the store handed them to the driver."""
    statements: list[tuple[str, tuple]] = []
    driver_fetch = backend._driver_fetch

    async def recording(driver, sql, args):
        statements.append((sql, args))
        return await driver_fetch(driver, sql, args)

    monkeypatch.setattr(backend, "_driver_fetch", recording)
    with acting_as(CALLER):
        for kwargs in ({"order_by": "created_at", "descending": True}, {}, {"order_by": "created_at"}):
            page = await store.list(limit=20, **kwargs)
            second = await store.list(limit=20, cursor=page.next_cursor, **kwargs)
            assert len(page.data) == len(second.data) == 20
            everything = await store.list(limit=1000, **kwargs)
            assert len(everything.data) == VISIBLE and not everything.has_more
    monkeypatch.undo()
    return statements


async def explain(backend, sql: str, args: tuple) -> list:
    """SQLite: the EXPLAIN QUERY PLAN steps; PostgreSQL: every node of EXPLAIN (ANALYZE, FORMAT JSON)."""
    raw = await backend.engine.raw_connection()
    try:
        driver = raw.driver_connection
        if backend.dialect == "sqlite":
            return [row[3] for row in await driver.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", args)]
        document = await driver.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
        plan = (document if isinstance(document, list) else json.loads(document))[0]["Plan"]
        return list(_nodes(plan))
    finally:
        raw.close()


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
async def test_listing_touches_what_the_caller_can_see(backend, policy_name, monkeypatch):
    await fill(backend)
    store = await backend.open_store(SPEC, Policy.parse(POLICIES[policy_name]))
    table = store.rows_table.name
    statements = await captured_listings(backend, store, monkeypatch)
    # each listing first probes the head of the partition (the caller sees too few rows there for a
    # page), then asks the access paths
    probes = [(sql, args) for sql, args in statements if " AS visible" in sql]
    paths = [(sql, args) for sql, args in statements if " AS visible" not in sql]
    assert len(probes) == len(paths) == 9
    for sql, args in probes:
        plan = await explain(backend, sql, args)
        if backend.dialect == "sqlite":
            assert not [step for step in plan if step.startswith(f"SCAN {table}")], plan
        else:  # every range read stops at the probe size
            on_rows = [n for n in plan if n.get("Relation Name") == table]
            assert on_rows and all(n["Actual Rows"] <= PROBE_MAX and n["Actual Loops"] == 1 for n in on_rows), sql
    for sql, args in paths:
        plan = await explain(backend, sql, args)
        if backend.dialect == "sqlite":
            for step in plan:
                assert not step.startswith(f"SCAN {table}"), plan
                assert not step.endswith("(tenant_id=?)") or table not in step, plan  # a whole tenant
        else:
            on_rows = [n for n in plan if n.get("Relation Name") == table]
            assert on_rows and not [n for n in on_rows if n["Node Type"] == "Seq Scan"], sql
            touched = sum(n["Actual Rows"] * n["Actual Loops"] for n in on_rows)
            assert touched <= 3 * VISIBLE, (touched, sql)


async def test_a_caller_who_sees_the_head_of_the_partition_is_answered_by_one_bounded_read(backend, monkeypatch):
    await fill(backend)
    store = await backend.open_store(SPEC, Policy.parse(POLICIES["default"]))
    statements: list[str] = []
    driver_fetch = backend._driver_fetch

    async def recording(driver, sql, args):
        statements.append(sql)
        return await driver_fetch(driver, sql, args)

    monkeypatch.setattr(backend, "_driver_fetch", recording)
    with acting_as(CALLER):  # the caller's own rows are the newest of the table
        page = await store.list(order_by="created_at", descending=True, limit=2)
        assert [r.id for r in page.data] == ["own2", "own1"] and page.has_more
        assert len(statements) == 1 and " AS visible" in statements[0]
        rest = await store.list(order_by="created_at", descending=True, limit=2, cursor=page.next_cursor)
    assert [r.id for r in rest.data][:1] == ["own0"] and len(rest.data) == 2  # then team7's newest row
    assert len(statements) == 3  # that page's head held one visible row only: the paths answered


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)
