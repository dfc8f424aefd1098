"""Schema versions: an older layout of ours is upgraded in place without losing a row; declarations
evolve (new fields, new or dropped unique groups); what cannot be used stops start-up clearly."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from sql_fixtures import open_backend, unique_prefix
from sqlalchemy.exc import IntegrityError

from ogx_tenancy import CollectionSpec, FieldSpec, Identity, Policy, RowConflict, acting_as, system_context
from ogx_tenancy_sql import LAYOUT_VERSION, PostgresStorageConfig, SchemaError

FIELDS = (FieldSpec("name", "str", indexed=True), FieldSpec("rank", "int"), FieldSpec("meta", "json"))
SPEC = CollectionSpec("docs", FIELDS)
ALICE = Identity("alice", {"teams": ["blue"]}, "t1")
BOB = Identity("bob", {"teams": ["blue"]}, "t1")
CAROL = Identity("carol", {"teams": ["red"]}, "t1")

# Layout 1 as ogx-tenancy-sql created it: rows only, default collation, JSON attributes, '' or NULL
# for unowned, no revision, no grants.
LAYOUT_1 = [  # the same DDL on both dialects
    'CREATE TABLE "{p}schema" '
    "(collection TEXT PRIMARY KEY, layout_version INTEGER NOT NULL, declaration TEXT NOT NULL)",
    'CREATE TABLE "{p}docs" (tenant_id TEXT NOT NULL, id TEXT NOT NULL, owner_principal TEXT, '
    "access_attributes JSON, name TEXT, rank BIGINT, meta JSON, PRIMARY KEY (tenant_id, id))",
]
LEGACY_ROWS = [
    # tenant, id, owner, attributes, name, rank, meta
    ("t1", "owned", "alice", {"teams": ["blue"]}, "owned", 1, {"v": 1}),
    ("t1", "empty-owner", "", {"teams": ["red"]}, "empty", 2, None),
    ("t1", "null-owner", None, None, "null", 3, [1, 2]),
    ("", "global", None, None, "global", 4, "text"),
    ("t2", "owned", "dan", {"teams": ["blue"], "roles": ["x"]}, "other tenant", 5, {"v": 2}),
]


def declaration(fields=FIELDS, unique=()) -> str:
    return json.dumps(
        {
            "fields": [{"name": f.name, "type": f.type, "indexed": f.indexed} for f in fields],
            "unique": [list(g) for g in unique],
        },
        sort_keys=True,
    )


async def create_layout_1(backend) -> None:
    prefix = backend.table_prefix
    async with backend.engine.begin() as conn:
        for ddl in LAYOUT_1:
            await conn.exec_driver_sql(ddl.format(p=prefix))
        await conn.execute(
            sa.text(f'INSERT INTO "{prefix}schema" VALUES (:c, 1, :d)'), {"c": "docs", "d": declaration()}
        )
        for tenant, row_id, owner, attributes, name, rank, meta in LEGACY_ROWS:
            await conn.execute(
                sa.text(f'INSERT INTO "{prefix}docs" VALUES (:t, :i, :o, :a, :n, :r, :m)'),
                {
                    "t": tenant,
                    "i": row_id,
                    "o": owner,
                    "a": None if attributes is None else json.dumps(attributes),
                    "n": name,
                    "r": rank,
                    "m": None if meta is None else json.dumps(meta),
                },
            )


async def test_layout_1_is_upgraded_in_place_without_losing_rows(backend_config):
    config = backend_config()
    backend = await open_backend(config)
    try:
        await create_layout_1(backend)
        store = await backend.open_store(SPEC, Policy.default())
        with system_context("check"):
            rows = {(r.tenant_id, r.id): r for r in (await store.list(limit=100)).data}
        assert set(rows) == {(t, i) for t, i, *_ in LEGACY_ROWS}
        for tenant, row_id, owner, attributes, name, rank, meta in LEGACY_ROWS:
            row = rows[(tenant, row_id)]
            assert (row.owner_principal, row.access_attributes) == (owner or None, attributes)
            assert dict(row.data) == {"name": name, "rank": rank, "meta": meta} and row.revision == 1
        async with backend.engine.connect() as conn:
            version = await conn.scalar(sa.text(f'SELECT layout_version FROM "{backend.table_prefix}schema"'))
        assert version == LAYOUT_VERSION == 2
        # grants were derived for the legacy owned rows, and '' became unowned (readable by all)
        with acting_as(BOB):
            assert sorted(r.id for r in (await store.list()).data) == ["empty-owner", "global", "null-owner", "owned"]
            assert (await store.update("owned", {"rank": 10})).revision == 2
        with acting_as(CAROL):
            assert sorted(r.id for r in (await store.list()).data) == ["empty-owner", "global", "null-owner"]
        # new rows get grants from the installed triggers; '' can no longer be stored
        with acting_as(ALICE):
            await store.create("new", {"name": "new"})
        with acting_as(BOB):
            assert await store.get("new") is not None
        with pytest.raises(IntegrityError):
            async with backend.engine.begin() as conn:
                await conn.execute(
                    sa.text(
                        f'INSERT INTO "{backend.table_prefix}docs" (tenant_id, id, owner_principal, revision) '
                        "VALUES ('t1', 'bad', '', 1)"
                    )
                )
    finally:
        await backend.close()
    # starting again changes nothing
    backend = await open_backend(config)
    try:
        store = await backend.open_store(SPEC, Policy.default())
        with system_context("check"):
            assert len((await store.list(limit=100)).data) == len(LEGACY_ROWS) + 1
    finally:
        await backend.close()


async def test_declarations_evolve(backend):
    store = await backend.open_store(SPEC, Policy.default())
    with acting_as(ALICE):
        await store.create("a", {"name": "x"})
        await store.create("b", {"name": "x"})
    # a new indexed field and a unique group: the column is added, existing rows read None
    grown = CollectionSpec("docs", (*FIELDS, FieldSpec("kind", "str", indexed=True)), unique=(("kind",),))
    store = await backend.open_store(grown, Policy.default())
    with acting_as(ALICE):
        assert (await store.get("a")).data["kind"] is None
        await store.create("c", {"name": "c", "kind": "k"})
        with pytest.raises(RowConflict):
            await store.create("d", {"name": "d", "kind": "k"})
    # dropping the unique group drops its index: the value may repeat again
    relaxed = CollectionSpec("docs", grown.fields)
    store = await backend.open_store(relaxed, Policy.default())
    with acting_as(ALICE):
        await store.create("d", {"name": "d", "kind": "k"})
        assert [r.id for r in (await store.list(where={"kind": "k"})).data] == ["c", "d"]
    # a unique group the data already violates cannot be declared, and nothing else changes
    with pytest.raises(SchemaError, match=r"cannot make \(name\) unique"):
        await backend.open_store(CollectionSpec("docs", grown.fields, unique=(("name",),)), Policy.default())
    store = await backend.open_store(relaxed, Policy.default())
    with acting_as(ALICE):
        assert len((await store.list()).data) == 4


async def test_what_cannot_be_used_stops_start_up_with_a_clear_message(backend):
    await backend.open_store(SPEC, Policy.default())
    retyped = CollectionSpec("docs", (FieldSpec("name", "int"), *FIELDS[1:]))
    with pytest.raises(SchemaError, match="'name' was declared 'str' and is now 'int'"):
        await backend.open_store(retyped, Policy.default())
    async with backend.engine.begin() as conn:
        await conn.exec_driver_sql(f'UPDATE "{backend.table_prefix}schema" SET layout_version = 99')
        await conn.exec_driver_sql(f'CREATE TABLE "{backend.table_prefix}foreign" (id TEXT)')
    backend._collections.clear()  # as a new process would
    with pytest.raises(SchemaError, match="layout version 99, newer than"):
        await backend.open_store(SPEC, Policy.default())
    with pytest.raises(SchemaError, match="not created by ogx-tenancy-sql"):
        await backend.open_store(CollectionSpec("foreign", ()), Policy.default())
    for bad in ("Bad", "a-b", "x" * 60):
        with pytest.raises(SchemaError):
            await backend.open_store(CollectionSpec(bad, ()), Policy.default())


@pytest.mark.postgres
async def test_two_processes_open_one_collection_together(pg_dsn):
    """Replicas starting at once take turns on the schema (an advisory lock), then share the rows."""
    prefix = unique_prefix()
    configs = [PostgresStorageConfig(dsn=pg_dsn, table_prefix=prefix, pool_size=2) for _ in range(2)]
    first, second = [await open_backend(c) for c in configs]
    try:
        stores = await asyncio.gather(*(b.open_store(SPEC, Policy.default()) for b in (first, second)))
        with acting_as(ALICE):
            await stores[0].create("a", {"name": "a"})
            assert (await stores[1].get("a")).data["name"] == "a"
    finally:
        await first.close()
        await second.close()
