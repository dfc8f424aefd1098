"""A Hypothesis state machine: random sequences of every store call, by several actors (two tenants,
global rows, the system context), inside and outside transactions, against an in-memory model.

The model decides with the core ``Policy`` (itself checked against OGX's ``is_action_allowed`` in
the core's tests and in test_differential.py); what is tested here is the store's state: rows,
owners, revisions, conflicts, cursors, and transactions that roll back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sql_fixtures import open_backend

from ogx_tenancy import (
    AccessDenied,
    CollectionSpec,
    FieldSpec,
    Identity,
    Owner,
    Policy,
    RowConflict,
    RowNotFound,
    acting_as,
    system_context,
)
from ogx_tenancy.context import SystemContext
from ogx_tenancy.policy import Resource, record_type

SPEC = CollectionSpec(
    "machine",
    (FieldSpec("slug", "str", indexed=True), FieldSpec("rank", "int", indexed=True), FieldSpec("note", "json")),
    unique=(("slug",),),
)
POLICIES = {
    "default": [],
    "custom": [
        {"forbid": {"actions": ["delete"]}, "unless": "user is owner"},
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
        {"permit": {"actions": ["read", "update"]}, "when": "user in owners teams"},
        {"permit": {"actions": ["read"]}, "when": "resource is unowned"},
        {"permit": {"actions": ["create"]}, "when": "user with writer in roles"},
    ],
}
ACTORS = {
    "alice": Identity("alice", {"teams": ["a"], "roles": ["writer"]}, "t1"),
    "bob": Identity("bob", {"teams": ["a"]}, "t1"),
    "carol": Identity("carol", {"teams": ["b"], "roles": ["writer"]}, "t1"),
    "dan": Identity("dan", {"teams": ["a"], "roles": ["writer"]}, "t2"),
    "system": SystemContext("state machine"),
    "system-t1": SystemContext("state machine", tenant_id="t1"),
}
IDS = ["x", "y", "z", "w"]
SLUGS = ["s1", "s2", "s3", "s4", "s5"]
actors = st.sampled_from(sorted(ACTORS))
ids = st.sampled_from(IDS)
ranks = st.one_of(st.none(), st.integers(0, 3))


@dataclass(frozen=True)
class ModelRow:
    tenant: str
    id: str
    owner: str | None
    attributes: dict | None
    data: dict
    revision: int


class StoreMachine(RuleBasedStateMachine):
    def __init__(self, config, policy_name: str):
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.backend = self.run(open_backend(config))
        self.policy = Policy.parse(POLICIES[policy_name])
        self.store = self.run(self.backend.open_store(SPEC, self.policy))
        self.rows: dict[tuple[str, str], ModelRow] = {}

    def teardown(self) -> None:
        self.run(self.backend.close())
        self.loop.close()

    def run(self, awaitable):
        return self.loop.run_until_complete(awaitable)

    def act(self, actor_name: str, make):
        """Run ``make()`` (a coroutine factory) as the actor; the outcome or the error type."""
        actor = ACTORS[actor_name]

        async def call():
            context = (
                acting_as(actor)
                if isinstance(actor, Identity)
                else system_context(actor.reason, tenant_id=actor.tenant_id)
            )
            with context:
                try:
                    return await make()
                except (AccessDenied, RowConflict, RowNotFound) as e:
                    return type(e)

        return self.run(call())

    # -- the model ------------------------------------------------------------------------------

    def allowed(self, action: str, row: ModelRow, actor) -> bool:
        resource = Resource(record_type(SPEC.name), row.id, row.owner, row.attributes, row.tenant)
        return self.policy.is_allowed(action, resource, actor)

    def addressed(self, actor, row_id: str) -> ModelRow | None:
        tenants = [actor.tenant_id, ""] if actor.tenant_id else [""]
        for tenant in tenants:
            row = self.rows.get((tenant, row_id))
            if row is not None and self.allowed("read", row, actor):
                return row
        return None

    def matching(self, actor, action: str, where: dict) -> list[ModelRow]:
        return [
            r
            for r in self.rows.values()
            if all(r.data[k] == v for k, v in where.items())
            and self.allowed("read", r, actor)
            and self.allowed(action, r, actor)
        ]

    # -- rules ----------------------------------------------------------------------------------

    @rule(
        actor=actors, row_id=ids, slug=st.sampled_from(SLUGS), rank=ranks, owner=st.sampled_from([None, "bob", "erin"])
    )
    def create(self, actor, row_id, slug, rank, owner):
        who = ACTORS[actor]
        if isinstance(who, Identity):
            stamp = (who.principal, who.attributes_as_lists() or None, who.tenant_id or "")
            given = None
        else:
            given = Owner(owner, {"teams": ["a"]} if owner else None, None)
            stamp = (owner, {"teams": ["a"]} if owner else None, who.tenant_id or "")
        data = {"slug": slug, "rank": rank, "note": {"by": actor}}
        new = ModelRow(stamp[2], row_id, stamp[0], stamp[1], data, 1)
        got = self.act(actor, lambda: self.store.create(row_id, data, owner=given))
        if not self.allowed("create", new, who):
            assert got is AccessDenied
        elif (new.tenant, row_id) in self.rows or any(
            r.tenant == new.tenant and r.data["slug"] == slug for r in self.rows.values()
        ):
            assert got is RowConflict
        else:
            assert got.revision == 1 and (got.owner_principal, got.tenant_id) == (new.owner, new.tenant)
            self.rows[(new.tenant, row_id)] = new

    @rule(actor=actors, row_id=ids)
    def get(self, actor, row_id):
        got = self.act(actor, lambda: self.store.get(row_id))
        expected = self.addressed(ACTORS[actor], row_id)
        if expected is None:
            assert got is None
        else:
            assert (got.tenant_id, got.id, dict(got.data), got.revision) == (
                expected.tenant,
                expected.id,
                expected.data,
                expected.revision,
            )

    @rule(actor=actors, row_id=ids, rank=ranks, revision=st.sampled_from(["none", "current", "stale"]))
    def update(self, actor, row_id, rank, revision):
        who = ACTORS[actor]
        target = self.addressed(who, row_id)
        expected_revision = {"none": None, "current": target.revision if target else 1, "stale": 999}[revision]
        got = self.act(actor, lambda: self.store.update(row_id, {"rank": rank}, expected_revision=expected_revision))
        if target is None:
            assert got is RowNotFound
        elif not self.allowed("update", target, who):
            assert got is AccessDenied
        elif expected_revision is not None and expected_revision != target.revision:
            assert got is RowConflict
        else:
            changed = replace(target, data={**target.data, "rank": rank}, revision=target.revision + 1)
            assert (got.tenant_id, got.revision, got.data["rank"]) == (changed.tenant, changed.revision, rank)
            self.rows[(target.tenant, target.id)] = changed

    @rule(actor=actors, row_id=ids)
    def delete(self, actor, row_id):
        who = ACTORS[actor]
        target = self.addressed(who, row_id)
        got = self.act(actor, lambda: self.store.delete(row_id))
        if target is None:
            assert got is False
        elif not self.allowed("delete", target, who):
            assert got is AccessDenied
        else:
            assert got is True
            del self.rows[(target.tenant, target.id)]

    @rule(actor=actors, where_rank=ranks, rank=ranks)
    def update_where(self, actor, where_rank, rank):
        who = ACTORS[actor]
        expected = self.matching(who, "update", {"rank": where_rank})
        got = self.act(actor, lambda: self.store.update_where({"rank": where_rank}, {"rank": rank}))
        assert got == len(expected)
        for r in expected:
            self.rows[(r.tenant, r.id)] = replace(r, data={**r.data, "rank": rank}, revision=r.revision + 1)

    @rule(actor=actors, where_rank=ranks)
    def delete_where(self, actor, where_rank):
        who = ACTORS[actor]
        expected = self.matching(who, "delete", {"rank": where_rank})
        got = self.act(actor, lambda: self.store.delete_where({"rank": where_rank}))
        assert got == len(expected)
        for r in expected:
            del self.rows[(r.tenant, r.id)]

    @rule(
        actor=actors,
        order=st.sampled_from([None, "rank", "slug"]),
        descending=st.booleans(),
        limit=st.integers(1, 4),
        action=st.sampled_from(["read", "update", "delete"]),
    )
    def list_every_page(self, actor, order, descending, limit, action):
        who = ACTORS[actor]

        async def pages():
            got, cursor = [], None
            while True:
                page = await self.store.list(
                    order_by=order, descending=descending, limit=limit, cursor=cursor, action=action
                )
                assert len(page.data) == limit or not page.has_more
                got.extend((r.tenant_id, r.id) for r in page.data)
                if not page.has_more:
                    return got
                cursor = page.next_cursor

        got = self.act(actor, pages)

        def key(r: ModelRow):
            if order is None:
                return (r.id, r.tenant)
            value = r.data[order]
            return (value is not None, value if value is not None else 0, r.id, r.tenant)

        expected = [(r.tenant, r.id) for r in sorted(self.matching(who, action, {}), key=key, reverse=descending)]
        assert got == expected

    @precondition(lambda self: self.rows)
    @rule(actor=actors, row_id=ids, commit=st.booleans())
    def transaction(self, actor, row_id, commit):
        """Two changes in one transaction: both stay when it completes, neither when it raises."""
        before = dict(self.rows)

        class Abort(Exception):
            pass

        async def body():
            async with self.store.transaction():
                await self.store.update_where({}, {"note": {"tx": True}})
                await self.store.delete(row_id)
                if not commit:
                    raise Abort

        try:
            outcome = self.act(actor, body)
        except Abort:
            outcome = "aborted"
        if outcome in (AccessDenied, RowNotFound, "aborted"):
            # a refused delete raised inside the transaction, or the test aborted it: nothing changed
            self.rows = before
            return
        who = ACTORS[actor]
        for r in self.matching(who, "update", {}):
            self.rows[(r.tenant, r.id)] = replace(r, data={**r.data, "note": {"tx": True}}, revision=r.revision + 1)
        target = self.addressed(who, row_id)
        if target is not None:
            del self.rows[(target.tenant, target.id)]

    @invariant()
    def stored_rows_equal_the_model(self):
        async def everything():
            with system_context("state machine check"):
                return (await self.store.list(limit=1000)).data

        stored = {(r.tenant_id, r.id): (r.owner_principal, dict(r.data), r.revision) for r in self.run(everything())}
        assert stored == {k: (r.owner, r.data, r.revision) for k, r in self.rows.items()}


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
def test_store_behaves_like_the_model(backend_config, dialect, policy_name):
    examples = 60 if dialect == "sqlite" else 25
    run_state_machine_as_test(
        lambda: StoreMachine(backend_config(), policy_name),
        settings=settings(
            max_examples=examples,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            derandomize=True,
        ),
    )
