"""The store contract, case by case, on both dialects: stamping, refusals, errors, pages, transactions."""

from __future__ import annotations

import asyncio
import contextvars
import itertools

import pytest
import sqlalchemy as sa

from ogx_tenancy import (
    AccessDenied,
    CollectionSpec,
    FieldSpec,
    Identity,
    InvalidRowData,
    Owner,
    Policy,
    RowConflict,
    RowNotFound,
    acting_as,
    system_context,
)
from ogx_tenancy_sql import SqlStore

SPEC = CollectionSpec(
    "things",
    (
        FieldSpec("slug", "str", indexed=True),
        FieldSpec("rank", "int", indexed=True),
        FieldSpec("score", "float"),
        FieldSpec("flag", "bool"),
        FieldSpec("meta", "json"),
    ),
    unique=(("slug",),),
)
SECRET = "secret-team-7f3a"  # an attribute value no error message may echo
ALICE = Identity("alice", {"teams": ["blue", SECRET]}, "t1")
BOB = Identity("bob", {"teams": ["blue"]}, "t1")
CAROL = Identity("carol", {"teams": ["red"]}, "t1")
DAN = Identity("dan", {"teams": ["blue"]}, "t2")
OWNER_ONLY = [{"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"}]
_names = itertools.count()


async def open_store(backend, policy=None, spec: CollectionSpec = SPEC) -> SqlStore:
    return await backend.open_store(spec, Policy.parse(policy or []))


async def expect(error: type[Exception], awaitable):
    with pytest.raises(error) as caught:
        await awaitable
    return caught.value


async def without_actor(awaitable):
    """Await in a fresh context with no actor, as a task started outside any request would."""

    async def bare():
        try:
            return await awaitable
        except Exception as e:  # noqa: BLE001 - the test inspects it
            return e

    return await asyncio.get_running_loop().create_task(bare(), context=contextvars.Context())


# -- stamping and refusals ------------------------------------------------------------------------


async def test_create_stamps_owner_attributes_and_tenant_from_the_identity(backend):
    store = await open_store(backend)
    with acting_as(ALICE):
        row = await store.create("a", {"slug": "a", "meta": {"k": [1, "two", None]}})
        again = await store.get("a")
    for r in (row, again):
        assert (r.owner_principal, r.tenant_id, r.revision) == ("alice", "t1", 1)
        assert r.access_attributes == {"teams": ["blue", SECRET]}
        assert dict(r.data) == {"slug": "a", "rank": None, "score": None, "flag": None, "meta": {"k": [1, "two", None]}}


@pytest.mark.parametrize("reserved", ["id", "owner_principal", "access_attributes", "tenant_id", "revision"])
async def test_reserved_names_in_row_data_are_ignored(backend, reserved):
    store = await open_store(backend)
    with acting_as(ALICE):
        created = await store.create("a", {"slug": "a", reserved: "mallory"})
        updated = await store.update("a", {"rank": 2, reserved: "mallory"})
        fetched = await store.get("a")
    for row in (created, updated, fetched):
        assert (row.id, row.owner_principal, row.tenant_id) == ("a", "alice", "t1")
        assert row.access_attributes == {"teams": ["blue", SECRET]}
        assert reserved not in row.data
    assert (created.revision, updated.revision) == (1, 2) and fetched.data["rank"] == 2


async def test_owner_argument_is_honoured_only_in_a_system_context(backend):
    store = await open_store(backend)
    with acting_as(ALICE):
        row = await store.create("forged", {"slug": "forged"}, owner=Owner("mallory", {"teams": ["x"]}, "t2"))
    assert (row.owner_principal, row.tenant_id) == ("alice", "t1")
    with system_context("test"):
        unowned = await store.create("sys", {"slug": "sys"})
        owned = await store.create("mig", {"slug": "mig"}, owner=Owner("bob", {"teams": ["blue"]}, "t1"))
    assert (unowned.owner_principal, unowned.tenant_id, unowned.access_attributes) == (None, "", None)
    assert (owned.owner_principal, owned.tenant_id) == ("bob", "t1")
    with system_context("tenant-bound", tenant_id="t2"):
        assert (await store.create("t2row", {"slug": "t2row"})).tenant_id == "t2"
        # a tenant-bound system context cannot write into another tenant
        await expect(AccessDenied, store.create("x", {"slug": "x"}, owner=Owner("bob", None, "t1")))


async def test_bad_values_are_refused_without_echoing_them(backend):
    store = await open_store(backend)
    with acting_as(ALICE):
        cases = [
            ({"slug": "a", "nope": SECRET}, "no field"),
            ({"slug": 5}, "expects a string"),
            ({"slug": "a", "rank": "7"}, "expects an integer"),
            ({"slug": "a", "rank": True}, "expects an integer"),
            ({"slug": "a", "rank": 2**63}, "64-bit"),
            ({"slug": "a", "score": float("nan")}, "finite"),
            ({"slug": "a", "flag": 1}, "true or false"),
            ({"slug": "a", "meta": {1: object()}}, "JSON"),
            ({"slug": f"nul\x00{SECRET}"}, "NUL"),
            ({"slug": "a", "meta": {"x": "\x00"}}, "NUL"),
        ]
        for data, expected in cases:
            error = await expect(InvalidRowData, store.create("a", data))
            assert expected in str(error) and SECRET not in str(error), (data, str(error))
        for bad_id in ("", "a\x00b", "x" * 2000, 7):
            await expect(InvalidRowData, store.create(bad_id, {"slug": "a"}))
        assert (await store.list()).data == []


async def test_attribute_values_that_cannot_be_stored_never_become_grants(backend):
    store = await open_store(backend)
    odd = Identity("odd", {"teams": ["blue", "bad\x00value"]}, "t1")
    with acting_as(odd):
        row = await store.create("a", {"slug": "a"})
    assert row.access_attributes == {"teams": ["blue"]}
    with acting_as(BOB):  # shares "blue" under the default policy
        assert [r.id for r in (await store.list()).data] == ["a"]


# -- no identity, system context --------------------------------------------------------------------


async def test_no_actor_reads_nothing_and_writes_nothing(backend):
    store = await open_store(backend)
    with system_context("seed"):
        await store.create("g", {"slug": "g"})
    assert await without_actor(store.get("g")) is None
    page = await without_actor(store.list())
    assert page.data == [] and not page.has_more
    for attempt in (
        store.create("n", {"slug": "n"}),
        store.update("g", {"rank": 1}),
        store.delete("g"),
        store.update_where({}, {"rank": 1}),
        store.delete_where({}),
    ):
        assert isinstance(await without_actor(attempt), AccessDenied)
    with system_context("check"):
        rows = (await store.list()).data
    assert [(r.id, r.data["rank"]) for r in rows] == [("g", None)]


async def test_system_context_sees_every_tenant_and_addresses_global_rows_by_id(backend):
    store = await open_store(backend)
    for who, row_id in ((ALICE, "same"), (DAN, "same"), (CAROL, "c")):
        with acting_as(who):
            await store.create(row_id, {"slug": f"{row_id}-{who.principal}"})
    with system_context("all tenants"):
        keys = sorted((r.tenant_id, r.id) for r in (await store.list()).data)
        assert keys == [("t1", "c"), ("t1", "same"), ("t2", "same")]
        assert await store.get("same") is None  # no global row with that id
    with system_context("tenant t2", tenant_id="t2"):
        assert (await store.get("same")).owner_principal == "dan"
        assert sorted(r.id for r in (await store.list()).data) == ["same"]


# -- tenants, ids, conflicts --------------------------------------------------------------------------


async def test_ids_and_unique_groups_are_per_tenant_and_conflicts_name_no_values(backend):
    store = await open_store(backend)
    with acting_as(ALICE):
        await store.create("x", {"slug": "taken", "meta": {"private": SECRET}})
        error = await expect(RowConflict, store.create("x", {"slug": "other"}))
        assert "already exists" in str(error) and SECRET not in str(error)
        error = await expect(RowConflict, store.create("y", {"slug": "taken"}))
        assert "(slug)" in str(error) and "taken" not in str(error)
    with acting_as(DAN):  # another tenant: the same id and slug are free, and nothing leaks
        row = await store.create("x", {"slug": "taken"})
        assert row.tenant_id == "t2"
        assert [r.tenant_id for r in (await store.list()).data] == ["t2"]


async def test_a_tenant_row_and_a_global_row_with_one_id(backend):
    store = await open_store(backend, [*OWNER_ONLY, {"permit": {"actions": ["read"]}, "when": "resource is unowned"}])
    with system_context("global"):
        await store.create("p", {"slug": "global-p"})
    with acting_as(ALICE):
        await store.create("p", {"slug": "alice-p"})
        assert (await store.get("p")).data["slug"] == "alice-p"
        assert sorted(r.data["slug"] for r in (await store.list()).data) == ["alice-p", "global-p"]
        await store.update("p", {"rank": 1})  # her own row, not the global one
    with acting_as(BOB):  # cannot read alice's row: the global one is the row "p" means for him
        assert (await store.get("p")).data["slug"] == "global-p"
        await expect(AccessDenied, store.update("p", {"rank": 2}))
    with system_context("check"):
        assert (await store.get("p")).data["rank"] is None


# -- policy on every action -------------------------------------------------------------------------


async def test_create_is_decided_by_the_policy(backend):
    writers_only = [
        {"forbid": {"actions": ["create"]}, "unless": "user with writer in roles"},
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
    ]
    store = await open_store(backend, writers_only)
    writer = Identity("wendy", {"roles": ["writer"]}, "t1")
    with acting_as(writer):
        await store.create("ok", {"slug": "ok"})
    with acting_as(ALICE):
        error = await expect(AccessDenied, store.create("no", {"slug": "no"}))
        assert "create" in str(error) and SECRET not in str(error)
    with system_context("check"):
        assert [r.id for r in (await store.list()).data] == ["ok"]


async def test_update_and_delete_need_read_then_the_action(backend):
    readers = [
        {"permit": {"actions": ["read"]}, "when": "user in owners teams"},
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
    ]
    store = await open_store(backend, readers)
    with acting_as(ALICE):
        await store.create("a", {"slug": "a"})
    with acting_as(BOB):  # same team: may read, not change
        await expect(AccessDenied, store.update("a", {"rank": 1}))
        await expect(AccessDenied, store.delete("a"))
        assert await store.update_where({}, {"rank": 1}) == 0
        assert await store.delete_where({}) == 0
        assert [r.id for r in (await store.list(action="update")).data] == []
    with acting_as(CAROL):  # cannot read: looks missing
        await expect(RowNotFound, store.update("a", {"rank": 1}))
        assert await store.delete("a") is False
    with acting_as(ALICE):
        assert (await store.update("a", {"rank": 3})).revision == 2
        assert await store.delete("a") is True


async def test_unowned_rows_mean_the_same_for_reading_and_writing(backend):
    # OGX 1.5 showed NULL-owner rows to its Python check but hid them from its SQL filter, and its
    # updates silently did nothing. Here an unowned row is `resource is unowned` for every action.
    read_only = [
        {"permit": {"actions": ["read"]}, "when": "resource is unowned"},
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
    ]
    store = await open_store(backend, read_only)
    with system_context("legacy", tenant_id="t1"):
        await store.create("legacy", {"slug": "legacy"}, owner=Owner("", None, None))  # "" means unowned
    with acting_as(ALICE):
        row = await store.get("legacy")
        assert row is not None and row.owner_principal is None
        await expect(AccessDenied, store.update("legacy", {"rank": 1}))
    writable = await open_store(backend, [{"permit": {"actions": ["read", "update"]}, "when": "resource is unowned"}])
    with acting_as(ALICE):
        assert (await writable.update("legacy", {"rank": 1})).data["rank"] == 1
        assert await writable.update_where({"slug": "legacy"}, {"rank": 2}) == 1
    with acting_as(DAN):  # another tenant's unowned row stays out of reach
        assert await writable.get("legacy") is None
        assert await writable.update_where({}, {"rank": 9}) == 0


async def test_sharing_follows_the_owners_attributes_through_grants(backend):
    store = await open_store(backend)  # OGX's default policy: share any value in any category
    with acting_as(ALICE):
        await store.create("a", {"slug": "a"})
    with acting_as(BOB):
        assert [r.id for r in (await store.list()).data] == ["a"]
    with acting_as(CAROL):
        assert (await store.list()).data == []
    # the grants table is derived by triggers: changing the stored attributes re-derives it
    rows = store.rows_table
    async with backend.engine.begin() as conn:
        await conn.execute(sa.update(rows).where(rows.c.id == "a").values(access_attributes={"teams": ["red"]}))
    with acting_as(CAROL):
        assert [r.id for r in (await store.list()).data] == ["a"]
    with acting_as(BOB):
        assert (await store.list()).data == []
    with acting_as(ALICE):
        await store.delete("a")
    async with backend.engine.connect() as conn:
        count = await conn.scalar(sa.text(f'SELECT count(*) FROM "{rows.name}__grants"'))
    assert count == 0  # the row's grants went with it (foreign key cascade)


# -- listing -----------------------------------------------------------------------------------------


async def test_pages_are_complete_when_the_policy_is_finished_in_python(backend):
    # a regex: scope is not pushed down; OGX 1.5 returned short and empty pages with has_more here
    regex = [{"permit": {"actions": ["read"], "resource": "regex:^sql_record::things::keep-"}}]
    store = await open_store(backend, regex)
    with system_context("seed", tenant_id="t1"):
        for i in range(60):
            await store.create(f"{'keep' if i % 7 == 0 else 'drop'}-{i:03d}", {"slug": f"s{i}", "rank": i % 5})
    expected = sorted(f"keep-{i:03d}" for i in range(0, 60, 7))
    with acting_as(CAROL):
        for limit in (1, 2, 3, 8, 9, 50):
            got, cursor, pages = [], None, 0
            while True:
                page = await store.list(limit=limit, cursor=cursor)
                pages += 1
                assert len(page.data) == limit or not page.has_more
                got += [r.id for r in page.data]
                if not page.has_more:
                    assert page.next_cursor is None
                    break
                cursor = page.next_cursor
            assert got == expected and pages == max(1, -(-len(expected) // limit))


async def test_order_with_null_values_and_ties(backend):
    store = await open_store(backend)
    with acting_as(ALICE):
        for row_id, rank in (("a", 2), ("b", None), ("c", 1), ("d", 2), ("e", None)):
            await store.create(row_id, {"slug": row_id, "rank": rank})
        for descending, expected in ((False, ["b", "e", "c", "a", "d"]), (True, ["d", "a", "c", "e", "b"])):
            for limit in (1, 2, 5):
                got, cursor = [], None
                while True:
                    page = await store.list(order_by="rank", descending=descending, limit=limit, cursor=cursor)
                    got += [r.id for r in page.data]
                    if not page.has_more:
                        break
                    cursor = page.next_cursor
                assert got == expected, (descending, limit)
        assert [r.id for r in (await store.list(where={"rank": None})).data] == ["b", "e"]
        assert [r.id for r in (await store.list(where={"rank": 2, "slug": "d"})).data] == ["d"]


async def test_cursor_resumes_after_the_last_row_under_concurrent_writes(backend):
    store = await open_store(backend)
    with acting_as(ALICE):
        for i in range(0, 40, 2):
            await store.create(f"w{i:03d}", {"slug": f"w{i}"})
        seen, deleted = [], set()
        page = await store.list(limit=3)
        seen += [r.id for r in page.data]
        step = 0
        while page.has_more:
            step += 1
            await store.create(f"w{step * 2 - 1:03d}", {"slug": f"ins-{step}"})  # behind or ahead of the cursor
            victim = f"w{min(38, len(seen) * 2 + 4):03d}"
            if await store.delete(victim):
                deleted.add(victim)
            page = await store.list(limit=3, cursor=page.next_cursor)
            seen += [r.id for r in page.data]
    assert len(seen) == len(set(seen)) and seen == sorted(seen)
    assert {f"w{i:03d}" for i in range(0, 40, 2)} - deleted <= set(seen)


async def test_bad_listing_arguments_are_refused(backend):
    store = await open_store(backend)
    with acting_as(ALICE):
        for i in range(3):
            await store.create(f"r{i}", {"slug": f"r{i}", "rank": i})
        page = await store.list(limit=1, order_by="rank")
        for kwargs in (
            {"limit": 0},
            {"limit": True},
            {"order_by": "nope"},
            {"order_by": "meta"},
            {"where": {"owner_principal": "bob"}},
            {"where": {"meta": 1}},
            {"where": {"rank": "x"}},
            {"action": "admin"},
            {"cursor": "not-a-cursor"},
            {"cursor": page.next_cursor},  # issued for order_by=rank
            {"cursor": page.next_cursor, "order_by": "rank", "descending": True},
        ):
            await expect(InvalidRowData, store.list(**kwargs))


# -- updates, revisions, transactions -----------------------------------------------------------------


async def test_revisions_and_expected_revision(backend):
    store = await open_store(backend)
    with acting_as(ALICE):
        created = await store.create("a", {"slug": "a", "rank": 1})
        first = await store.update("a", {"rank": 2}, expected_revision=created.revision)
        assert (first.revision, first.data["rank"], first.data["slug"]) == (2, 2, "a")
        await expect(RowConflict, store.update("a", {"rank": 3}, expected_revision=1))
        await store.create("b", {"slug": "b"})
        await expect(RowConflict, store.update("b", {"slug": "a"}))
        assert await store.update_where({"rank": 2}, {"score": 0.5}) == 1
        row = await store.get("a")
        assert (row.revision, row.data["score"], row.data["rank"]) == (3, 0.5, 2)


async def test_transactions_roll_back_commit_and_nest(backend):
    store = await open_store(backend)
    other = await open_store(backend, spec=CollectionSpec("others", (FieldSpec("slug", "str"),)))

    class Abort(Exception):
        pass

    with acting_as(ALICE):
        await store.create("keep", {"slug": "keep"})
        with pytest.raises(Abort):
            async with store.transaction():
                await store.create("gone", {"slug": "gone"})
                await other.create("gone-too", {"slug": "x"})
                await store.update("keep", {"rank": 5})
                raise Abort
        assert await store.get("gone") is None and await other.get("gone-too") is None
        assert (await store.get("keep")).data["rank"] is None
        async with store.transaction():
            await store.create("t1", {"slug": "t1"})
            # a conflict inside a transaction is an error for that call only (PostgreSQL would
            # otherwise abort the whole transaction)
            await expect(RowConflict, store.create("t1", {"slug": "t1b"}))
            await expect(RowConflict, store.update("keep", {"slug": "t1"}))
            with pytest.raises(Abort):
                async with other.transaction():  # a savepoint
                    await other.create("inner", {"slug": "inner"})
                    raise Abort
            await other.create("after", {"slug": "after"})
            await asyncio.gather(*(store.create(f"g{i}", {"slug": f"g{i}"}) for i in range(5)))
        assert await other.get("inner") is None and await other.get("after") is not None
        assert sorted(r.id for r in (await store.list()).data) == ["g0", "g1", "g2", "g3", "g4", "keep", "t1"]


async def test_bulk_create_needs_a_system_context_and_checks_rows(backend):
    store = await open_store(backend)
    rows = [(f"b{i}", {"slug": f"b{i}", "rank": i}, Owner("bob", {"teams": ["blue"]}, "t1")) for i in range(25)]
    with acting_as(ALICE):
        await expect(AccessDenied, store.bulk_create(rows))
    with system_context("import"):
        assert await store.bulk_create(rows, batch=10) == 25
        await expect(RowConflict, store.bulk_create(rows[:1]))
        await expect(InvalidRowData, store.bulk_create([("x", {"slug": 1}, None)]))
    with acting_as(ALICE):  # shares team blue with bob: grants were derived for bulk rows too
        assert len((await store.list(limit=100)).data) == 25


async def test_capabilities_are_declared(backend, dialect):
    store = await open_store(backend)
    caps = store.capabilities
    assert caps.transactions and caps.persistent
    assert caps.concurrent_processes == (dialect == "postgres")
    assert caps.pushdown == {"OwnerIs", "Unowned", "OwnerShares", "IdEquals", "IdPrefix"}
