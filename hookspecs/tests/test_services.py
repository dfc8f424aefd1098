"""The prompts, connectors and batches services on a contract-following in-memory store.

The same services run against the SQL backends in the root ``tests/`` (through a real OGX).
"""

from __future__ import annotations

import asyncio

import pytest
from memory_store import MemoryBackend

from ogx_tenancy.context import acting_as, system_context
from ogx_tenancy.policy import Policy
from ogx_tenancy.services import Conflict, InvalidRequest
from ogx_tenancy.services.batches import BatchNotFound, BatchService, idempotent_batch_id
from ogx_tenancy.services.connectors import ConnectorNotFound, ConnectorRecord, ConnectorService
from ogx_tenancy.services.prompts import (
    NotLatestVersion,
    PromptNotFound,
    PromptService,
    PromptVersionNotFound,
    version_row_id,
)
from ogx_tenancy.store import AccessDenied, Owner
from ogx_tenancy.types import Identity

ALICE = Identity("alice", {"teams": ["red"]}, "acme")
ALEX = Identity("alex", {"teams": ["red"]}, "acme")  # alice's team mate
BOB = Identity("bob", {"teams": ["red"]}, "globex")  # same team name, other tenant

# team mates may read; only owners may change — OGX 1.5 would let ALEX append versions here
READ_SHARED_POLICY = [
    {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
    {"permit": {"actions": ["read"]}, "when": "user in owners teams"},
]


async def open_prompts(policy: Policy | None = None) -> PromptService:
    backend = MemoryBackend()
    return await PromptService.open(lambda c: backend.open_store(c, policy or Policy.default()))


# -- prompts ---------------------------------------------------------------------------------------


async def test_prompt_lifecycle_follows_ogx_semantics():
    service = await open_prompts()
    with acting_as(ALICE):
        created = await service.create("Hello {{ name }}", ["name"])
        assert (created.version, created.is_default, created.variables) == (1, True, ["name"])
        v2 = await service.update(created.prompt_id, "Hi {{ name }}", 1, ["name"], set_as_default=False)
        assert (v2.version, v2.is_default) == (2, False)
        assert (await service.get(created.prompt_id)).version == 1
        v3 = await service.update(created.prompt_id, "Yo {{ name }}", 2, ["name"])
        assert (v3.version, v3.is_default) == (3, True)  # the truth, unlike OGX 1.5
        assert (await service.get(created.prompt_id)).prompt == "Yo {{ name }}"
        assert (await service.get(created.prompt_id, 2)).prompt == "Hi {{ name }}"
        versions = await service.list_versions(created.prompt_id)
        assert [(v.version, v.is_default) for v in versions] == [(1, False), (2, False), (3, True)]
        back = await service.set_default(created.prompt_id, 1)
        assert (back.version, back.is_default, back.prompt) == (1, True, "Hello {{ name }}")
        assert [p.version for p in await service.list()] == [1]
        with pytest.raises(NotLatestVersion):
            await service.update(created.prompt_id, "stale", 2)
        with pytest.raises(PromptVersionNotFound):
            await service.get(created.prompt_id, 9)
        with pytest.raises(PromptVersionNotFound):
            await service.set_default(created.prompt_id, 9)
        await service.delete(created.prompt_id)
        with pytest.raises(PromptNotFound):
            await service.get(created.prompt_id)
    with system_context("test: inspect the table"):
        leftovers = await service.store.list(where={"prompt_id": created.prompt_id})
    assert leftovers.data == []


async def test_prompt_list_is_newest_id_first_and_complete_across_pages():
    service = await open_prompts()
    with acting_as(ALICE):
        ids = [(await service.create(f"p{i}")).prompt_id for i in range(230)]
        listed = [p.prompt_id for p in await service.list()]
    assert listed == sorted(ids, reverse=True)


async def test_undeclared_variables_are_a_400():
    service = await open_prompts()
    with acting_as(ALICE), pytest.raises(InvalidRequest) as error:
        await service.create("Hello {{ name }}")
    assert error.value.status == 400 and error.value.param == "variables"


async def test_a_reader_cannot_append_a_version():
    service = await open_prompts(Policy.parse(READ_SHARED_POLICY))
    with acting_as(ALICE):
        prompt = await service.create("mine")
    with acting_as(ALEX):
        assert (await service.get(prompt.prompt_id)).prompt == "mine"  # the policy lets ALEX read
        with pytest.raises(AccessDenied):
            await service.update(prompt.prompt_id, "his", 1)
        with pytest.raises(AccessDenied):
            await service.set_default(prompt.prompt_id, 1)
        with pytest.raises(AccessDenied):
            await service.delete(prompt.prompt_id)
    with acting_as(ALICE):
        versions = await service.list_versions(prompt.prompt_id)
        assert [v.version for v in versions] == [1]
        assert (await service.update(prompt.prompt_id, "still mine", 1)).version == 2


async def test_versions_added_by_a_team_mate_keep_the_prompts_owner():
    service = await open_prompts()  # OGX's default policy: team mates may update
    with acting_as(ALICE):
        prompt = await service.create("v1")
    with acting_as(ALEX):
        await service.update(prompt.prompt_id, "v2 by alex", 1)
    with system_context("test: inspect owners"):
        rows = (await service.store.list(where={"prompt_id": prompt.prompt_id})).data
    assert {row.owner_principal for row in rows} == {"alice"} and len(rows) == 3


async def test_prompts_are_invisible_across_tenants():
    service = await open_prompts()
    with acting_as(ALICE):
        prompt = await service.create("acme only")
    with acting_as(BOB):
        assert await service.list() == []
        for call in (
            service.get(prompt.prompt_id),
            service.get(prompt.prompt_id, 1),
            service.list_versions(prompt.prompt_id),
            service.update(prompt.prompt_id, "x", 1),
            service.set_default(prompt.prompt_id, 1),
            service.delete(prompt.prompt_id),
        ):
            with pytest.raises(PromptNotFound):
                await call
    with acting_as(ALICE):
        assert (await service.get(prompt.prompt_id)).prompt == "acme only"


async def test_concurrent_updates_of_one_version_add_exactly_one():
    service = await open_prompts()
    with acting_as(ALICE):
        prompt = await service.create("v1")
        results = await asyncio.gather(
            *(service.update(prompt.prompt_id, f"try {i}", 1) for i in range(5)), return_exceptions=True
        )
        versions = await service.list_versions(prompt.prompt_id)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, NotLatestVersion) for r in results if isinstance(r, Exception))
    assert [v.version for v in versions] == [1, 2] and [v.is_default for v in versions] == [False, True]


async def test_every_prompt_has_exactly_one_default_whatever_the_sequence():
    service = await open_prompts()
    with acting_as(ALICE):
        prompt = await service.create("v1")
        latest = 1
        for step in range(40):
            if step % 3 == 0:
                latest = (
                    await service.update(prompt.prompt_id, f"v{latest + 1}", latest, set_as_default=step % 2 == 0)
                ).version
            else:
                await service.set_default(prompt.prompt_id, 1 + step % latest)
            versions = await service.list_versions(prompt.prompt_id)
            defaults = [v for v in versions if v.is_default]
            assert len(defaults) == 1
            assert (await service.get(prompt.prompt_id)) == defaults[0]


async def test_no_actor_is_denied():
    service = await open_prompts()
    with pytest.raises(AccessDenied):
        await service.create("nobody")


async def test_restore_keeps_ids_versions_default_and_owner():
    from ogx_tenancy.services.prompts import PromptRecord, StoredVersion

    service = await open_prompts()
    pid = "pmpt_" + "ab" * 24
    record = PromptRecord(
        prompt_id=pid,
        owner=Owner("alice", {"teams": ["red"]}, "acme"),
        default_version=1,
        versions=(StoredVersion(1, "one", [], 100), StoredVersion(2, "two {{ x }}", ["x"], 200)),
        created_at=100,
    )
    with acting_as(ALICE), pytest.raises(AccessDenied):
        await service.restore(record)  # a user may not write owners and tenants
    with system_context("test: migration"):
        assert await service.restore(record)
        assert not await service.restore(record)
        assert await service.export(pid, "acme") == record
        assert await service.export(pid, "globex") is None
    with acting_as(ALICE):
        assert (await service.get(pid)).prompt == "one"
        assert [(v.version, v.is_default) for v in await service.list_versions(pid)] == [(1, True), (2, False)]
        assert (await service.update(pid, "three", 2)).version == 3
    with acting_as(BOB), pytest.raises(PromptNotFound):
        await service.get(pid)
    with system_context("test", tenant_id="acme"):
        assert (await service.store.get(version_row_id(pid, 2))).owner_principal == "alice"


# -- connectors ------------------------------------------------------------------------------------


async def open_connectors() -> ConnectorService:
    backend = MemoryBackend()
    return await ConnectorService.open(lambda c: backend.open_store(c, Policy.default()))


GLOBAL_WIKI = ConnectorRecord("wiki", "http://wiki/mcp", server_label="wiki")
ACME_CRM = ConnectorRecord("crm", "http://acme-crm/mcp")
GLOBEX_CRM = ConnectorRecord("crm", "http://globex-crm/mcp")


async def test_connectors_are_global_or_per_tenant():
    service = await open_connectors()
    report = await service.sync([GLOBAL_WIKI], {"acme": [ACME_CRM], "globex": [GLOBEX_CRM]})
    assert sorted(report.created) == [("", "wiki"), ("acme", "crm"), ("globex", "crm")]
    with acting_as(ALICE):
        assert {c.url for c in await service.list()} == {"http://wiki/mcp", "http://acme-crm/mcp"}
        assert (await service.get("crm")).url == "http://acme-crm/mcp"
    with acting_as(BOB):
        assert (await service.get("crm")).url == "http://globex-crm/mcp"
    with acting_as(Identity("carol", {}, "initech")):
        assert [c.connector_id for c in await service.list()] == ["wiki"]
        with pytest.raises(ConnectorNotFound):
            await service.get("crm")
    assert await service.list() == []  # no actor, nothing


async def test_connector_sync_updates_and_removes():
    service = await open_connectors()
    await service.sync([GLOBAL_WIKI], {"acme": [ACME_CRM]})
    moved = ConnectorRecord("wiki", "http://wiki-v2/mcp")
    report = await service.sync([moved], {})
    assert report.updated == [("", "wiki")] and report.removed == [("acme", "crm")]
    assert (await service.sync([moved], {})).unchanged == [("", "wiki")]
    with acting_as(ALICE):
        assert [c.url for c in await service.list()] == ["http://wiki-v2/mcp"]


async def test_a_tenant_connector_may_not_shadow_a_global_one():
    service = await open_connectors()
    with pytest.raises(InvalidRequest):
        await service.sync([GLOBAL_WIKI], {"acme": [ConnectorRecord("wiki", "http://other/mcp")]})


# -- batches ---------------------------------------------------------------------------------------


async def open_batches(policy: Policy | None = None) -> BatchService:
    backend = MemoryBackend()
    return await BatchService.open(lambda c: backend.open_store(c, policy or Policy.default()))


def batch_args(**overrides):
    return {"input_file_id": "file-1", "endpoint": "/v1/chat/completions", "completion_window": "24h"} | overrides


async def test_idempotency_keys_belong_to_the_caller():
    service = await open_batches()
    made = {}
    for who in (ALICE, ALEX, BOB):
        with acting_as(who):
            record, created = await service.create(**batch_args(idempotency_key="nightly"))
            assert created and record.status == "validating"
            made[who.principal] = record.id
            again, created_again = await service.create(**batch_args(idempotency_key="nightly"))
            assert (again.id, created_again) == (record.id, False)
            with pytest.raises(Conflict):
                await service.create(**batch_args(idempotency_key="nightly", input_file_id="file-2"))
    assert len(set(made.values())) == 3
    assert made["alice"] == idempotent_batch_id("acme", "alice", "nightly")


async def test_batches_are_isolated_across_tenants():
    service = await open_batches()
    with acting_as(ALICE):
        mine, _ = await service.create(**batch_args())
    with acting_as(BOB):
        assert (await service.list()).data == []
        with pytest.raises(BatchNotFound):
            await service.get(mine.id)
        with pytest.raises(BatchNotFound):
            await service.cancel(mine.id)
    with acting_as(ALICE):
        assert (await service.get(mine.id)).status == "validating"


async def test_batch_list_pages_newest_first():
    service = await open_batches()
    with acting_as(ALICE):
        ids = []
        for i in range(7):
            record, _ = await service.create(**batch_args())
            with system_context("test: distinct creation times", tenant_id="acme"):
                await service.store.update(
                    record.id, {"created_at": 1000 + i, "batch": record.batch | {"created_at": 1000 + i}}
                )
            ids.append(record.id)
        first = await service.list(limit=3)
        second = await service.list(after=first.data[-1]["id"], limit=3)
        third = await service.list(after=second.data[-1]["id"], limit=3)
    expected = list(reversed(ids))
    assert [b["id"] for b in first.data] == expected[:3] and first.has_more
    assert [b["id"] for b in second.data] == expected[3:6] and second.has_more
    assert [b["id"] for b in third.data] == expected[6:] and not third.has_more
    with acting_as(ALICE), pytest.raises(InvalidRequest):
        await service.list(limit=0)


async def test_cancel_rules_and_processing_bookkeeping():
    # users may create and read their batches but not change them; processing still records progress
    policy = Policy.parse([{"permit": {"actions": ["create", "read"]}, "when": "user is owner"}])
    service = await open_batches(policy)
    with acting_as(ALICE):
        record, _ = await service.create(**batch_args())
        with pytest.raises(AccessDenied):
            await service.cancel(record.id)
        progressed = await service.record_progress(record.id, record.tenant_id, {"status": "in_progress"})
        assert progressed.status == "in_progress"
        done = await service.record_progress(
            record.id, record.tenant_id, {"status": "completed", "output_file_id": "f"}
        )
        assert done.batch["output_file_id"] == "f"
        # a final status never changes
        assert (await service.record_progress(record.id, record.tenant_id, {"status": "failed"})).status == "completed"

    service = await open_batches()
    with acting_as(ALICE):
        record, _ = await service.create(**batch_args())
        assert (await service.cancel(record.id)).status == "cancelling"
        # once cancelling, only "cancelled" is recorded
        assert (await service.record_progress(record.id, "acme", {"status": "completed"})).status == "cancelling"
        assert (await service.record_progress(record.id, "acme", {"status": "cancelled"})).status == "cancelled"
        with pytest.raises(Conflict):
            finished, _ = await service.create(**batch_args())
            await service.record_progress(finished.id, "acme", {"status": "completed"})
            await service.cancel(finished.id)


async def test_bad_batch_requests_are_400s():
    service = await open_batches()
    with acting_as(ALICE):
        for args in (
            batch_args(endpoint="/v1/responses"),
            batch_args(completion_window="1h"),
            batch_args(idempotency_key=""),
        ):
            with pytest.raises(InvalidRequest):
                await service.create(**args)
