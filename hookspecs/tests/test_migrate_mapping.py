"""``adapter/migrate.py`` on hand-made OGX 1.5 tables (SQLite, OGX's column layout) into the
in-memory contract store: how rows map, what is reported, resuming, and never overwriting.

The round trip from a real OGX server is in the root ``tests/test_migrate.py``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from test_wiring import with_memory_storage

from ogx_tenancy.adapter.migrate import migrate
from ogx_tenancy.context import acting_as, system_context
from ogx_tenancy.host import Tenancy
from ogx_tenancy.services.prompts import PromptRecord, PromptService, StoredVersion
from ogx_tenancy.store import Owner
from ogx_tenancy.types import Identity

P1, P2, P3 = ("pmpt_" + c * 48 for c in "abc")
RED = json.dumps({"teams": ["crimson7"]})


def ogx_tables(db: Path, prompts=(), connectors=(), batches=()) -> None:
    """OGX 1.5's tables as AuthorizedSqlStore creates them (tenant_id: multi-tenant mode)."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE prompts (id TEXT PRIMARY KEY, prompt_id TEXT, version INTEGER, is_default BOOLEAN, "
            "created_at INTEGER, prompt_data JSON, access_attributes JSON, owner_principal TEXT, tenant_id TEXT)"
        )
        conn.execute(
            "CREATE TABLE connectors (id TEXT PRIMARY KEY, connector_type TEXT, url TEXT, server_label TEXT, "
            "server_name TEXT, server_description TEXT, connector_data JSON, access_attributes JSON, "
            "owner_principal TEXT, tenant_id TEXT)"
        )
        conn.execute(
            "CREATE TABLE batches (id TEXT PRIMARY KEY, created_at INTEGER, status TEXT, batch_data JSON, "
            "access_attributes JSON, owner_principal TEXT, tenant_id TEXT)"
        )
        conn.executemany("INSERT INTO prompts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", prompts)
        conn.executemany("INSERT INTO connectors VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", connectors)
        conn.executemany("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?)", batches)


def prompt_row(pid, version, default, text, owner="alice", tenant="acme"):
    data = json.dumps({"prompt": text, "variables": []})
    return (f"{pid}:{version}", pid, version, default, 100 + version, data, RED, owner, tenant)


def batch_row(batch_id, status="completed", owner="alice", tenant="acme"):
    batch = {
        "id": batch_id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "input_file_id": "file-1",
        "completion_window": "24h",
        "status": status,
        "created_at": 5,
    }
    return (batch_id, 5, status, json.dumps(batch), RED, owner, tenant)


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "source.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "storage": {
                    "backends": {
                        "sql_default": {"type": "sql_sqlite", "db_path": str(tmp_path / "sql.db")},
                        "kv_default": {"type": "kv_sqlite", "db_path": str(tmp_path / "kv.db")},
                    }
                }
            }
        )
    )
    return path


def tenancy() -> Tenancy:
    return Tenancy.from_config({"storage": {"backend": "memory"}}, manager=with_memory_storage())


async def prompts_of(target: Tenancy, user: Identity):
    service = await PromptService.open(target.open_store)
    with acting_as(user):
        return {p.prompt_id: await service.list_versions(p.prompt_id) for p in await service.list()}


async def test_defaults_owners_and_tenants_are_mapped_and_reported(source, tmp_path):
    ogx_tables(
        tmp_path / "sql.db",
        prompts=[
            prompt_row(P1, 1, 0, "p1 v1"),
            prompt_row(P1, 2, 0, "p1 v2 by bob", owner="bob"),  # no default left (OGX's race), bob appended
            prompt_row(P2, 1, 1, "p2 v1", tenant=None),  # stored without a tenant
            prompt_row(P2, 2, 1, "p2 v2", tenant=None),  # two defaults
            prompt_row(P2, 3, 0, "p2 v3", tenant=None),
        ],
        connectors=[("wiki", "mcp", "http://wiki/mcp", None, None, None, None, None, "", "")],
        batches=[batch_row("batch_1"), batch_row("batch_2", status="in_progress", tenant="globex")],
    )
    target = tenancy()
    report = await migrate(target, source)
    assert report.ok, report.as_text()
    assert {k: (r.source, r.created) for k, r in report.kinds.items()} == {
        "prompts": (2, 2),
        "connectors": (1, 1),
        "batches": (2, 2),
    }
    notes = {(n["id"], n["note"]) for n in report.notes}
    assert (P1, "versions appended by other users now belong to the prompt's owner") in notes
    assert (P1, "had 0 default versions: version 2 is the default") in notes
    assert (P2, "had 2 default versions: version 2 is the default") in notes
    assert (P2, "stored without a tenant: now a global prompt") in notes
    assert ("batch_2", "copied while in_progress: it will not be resumed") in notes
    assert all("crimson7" not in n["note"] for n in report.notes)  # attribute values are never echoed

    alice = Identity("alice", {"teams": ["crimson7"]}, "acme")
    served = await prompts_of(target, alice)
    assert [(v.version, v.is_default, v.prompt) for v in served[P1]] == [(1, False, "p1 v1"), (2, True, "p1 v2 by bob")]
    assert [v.is_default for v in served[P2]] == [False, True, False]
    # P2 is global: a red team member of another tenant shares alice's team, so OGX's default policy
    # lets her see it; P1 stays in acme
    assert set(await prompts_of(target, Identity("carol", {"teams": ["crimson7"]}, "globex"))) == {P2}
    with system_context("test"):
        stored = await (await PromptService.open(target.open_store)).export(P1, "acme")
    assert stored.owner == Owner("alice", {"teams": ["crimson7"]}, "acme")


async def test_assign_tenant_puts_untenanted_rows_in_that_tenant(source, tmp_path):
    ogx_tables(tmp_path / "sql.db", prompts=[prompt_row(P2, 1, 1, "p2", tenant=None)])
    target = tenancy()
    report = await migrate(target, source, assign_tenant="acme")
    assert report.ok and not any(n["id"] == P2 for n in report.notes)
    assert set(await prompts_of(target, Identity("carol", {"teams": ["crimson7"]}, "globex"))) == set()
    assert set(await prompts_of(target, Identity("alice", {"teams": ["crimson7"]}, "acme"))) == {P2}


async def test_dry_run_writes_nothing_and_a_rerun_resumes(source, tmp_path):
    ogx_tables(tmp_path / "sql.db", prompts=[prompt_row(pid, 1, 1, f"{pid} v1") for pid in (P1, P2, P3)])
    target = tenancy()
    dry = await migrate(target, source, dry_run=True)
    assert (dry.kinds["prompts"].source, dry.kinds["prompts"].created) == (3, 3)
    assert await prompts_of(target, Identity("alice", {"teams": ["crimson7"]}, "acme")) == {}
    # an interrupted earlier run had copied P1 already
    service = await PromptService.open(target.open_store)
    with system_context("test: earlier run"):
        await service.restore(
            PromptRecord(
                P1, Owner("alice", {"teams": ["crimson7"]}, "acme"), 1, (StoredVersion(1, f"{P1} v1", [], 101),), 101
            )
        )
    report = await migrate(target, source)
    prompts = report.kinds["prompts"]
    assert (prompts.created, prompts.already_present, prompts.verified) == (2, 1, True)
    again = await migrate(target, source)
    assert (again.kinds["prompts"].created, again.kinds["prompts"].already_present) == (0, 3) and again.ok


async def test_differing_rows_are_reported_never_overwritten(source, tmp_path):
    ogx_tables(tmp_path / "sql.db", prompts=[prompt_row(P1, 1, 1, "from OGX")])
    target = tenancy()
    service = await PromptService.open(target.open_store)
    with system_context("test: changed since"):
        await service.restore(
            PromptRecord(P1, Owner("alice", {"teams": ["crimson7"]}, "acme"), 1, (StoredVersion(1, "ours", [], 1),), 1)
        )
    report = await migrate(target, source)
    assert not report.ok and report.kinds["prompts"].differing == [f"acme/{P1}"]
    assert f"differs (kept ours): acme/{P1}" in report.as_text()
    with acting_as(Identity("alice", {"teams": ["crimson7"]}, "acme")):
        assert (await service.get(P1)).prompt == "ours"


async def test_missing_source_database_is_reported_not_created(source, tmp_path):
    report = await migrate(tenancy(), source)
    assert report.ok and report.kinds["prompts"].source == 0
    assert {s["what"] for s in report.sources} == {
        f"no file at {tmp_path / 'sql.db'}",
        f"no file at {tmp_path / 'kv.db'}",
    }
    assert not (tmp_path / "sql.db").exists()
