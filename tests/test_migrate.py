"""``ogx-tenancy migrate`` round trip: a plain OGX 1.5 server (its own ``upstream_header`` auth, its
built-in prompts, connectors and reference batches) fills its database through its own API as
several users of three tenants; ``migrate`` copies it into our store; ``ogx-tenancy run`` then serves
every row to the same users with the same content; a second ``migrate`` changes nothing.

Pre-1.5 KVStore entries (``prompts:v1:*``, ``connectors:v1:*``, ``batch:*``) are added to the
source's KV database as an older OGX wrote them, and come through as unowned global rows.
The source is SQLite or PostgreSQL, and so is our store.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.ogx import OgxServer, run_cli
from support.services import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    PLUGINS,
    User,
    fresh_pg_database,
    http,
    openai_client,
    plain_ogx_config,
    services_config,
    storage_config,
    upload_batch_input,
    wait_for_batch,
)
from support.upstream import RecordingUpstream

pytestmark = pytest.mark.ogx_server

USERS = (ALICE, BOB, CAROL, DAVE)
BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]

KV_PROMPT = "pmpt_" + "0123456789abcdef" * 3
KV_BATCH = {
    "id": "batch_legacy00000001",
    "object": "batch",
    "endpoint": "/v1/chat/completions",
    "input_file_id": "file-legacy",
    "completion_window": "24h",
    "status": "completed",
    "created_at": 1700000000,
    "request_counts": {"total": 1, "completed": 1, "failed": 0},
}
KV_CONNECTOR = {"connector_id": "legacy-mcp", "connector_type": "mcp", "url": "http://legacy.invalid/mcp"}


def populate(server: OgxServer) -> None:
    """What users do on the plain OGX server, including what OGX 1.5 lets through (bob appends a
    version to alice's prompt)."""
    alice = http(server, ALICE)
    first = alice.post("/v1/prompts", json={"prompt": "Hello {{ name }}", "variables": ["name"]}).json()["prompt_id"]
    body = {"prompt": "Hi {{ name }}", "version": 1, "variables": ["name"]}
    assert alice.put(f"/v1/prompts/{first}", json=body).status_code == 200
    body = {"prompt": "Yo {{ name }}", "version": 2, "variables": ["name"], "set_as_default": False}
    assert alice.put(f"/v1/prompts/{first}", json=body).status_code == 200
    alice.post("/v1/prompts", json={"prompt": "alice's second"})
    bob = http(server, BOB)
    appended = bob.put(f"/v1/prompts/{first}", json={"prompt": "bob was here", "version": 3, "set_as_default": False})
    assert appended.status_code == 200, appended.text  # OGX 1.5: a team mate appends to alice's prompt
    bob.post("/v1/prompts", json={"prompt": "bob's own"})
    carol_prompt = http(server, CAROL).post("/v1/prompts", json={"prompt": "carol {{ x }}", "variables": ["x"]})
    carol_id = carol_prompt.json()["prompt_id"]
    http(server, CAROL).put(f"/v1/prompts/{carol_id}", json={"prompt": "carol v2", "version": 1})
    http(server, CAROL).put(f"/v1/prompts/{carol_id}/set-default-version", json={"version": 1})
    http(server, DAVE).post("/v1/prompts", json={"prompt": "dave's"})
    for user in (ALICE, CAROL, DAVE):
        client = openai_client(server, user)
        extra = {"idempotency_key": f"key-{user.name}"} if user is CAROL else {}
        batch = client.batches.create(
            input_file_id=upload_batch_input(client, f"migrate-{user.name}"),
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"owner": user.name},
            extra_body=extra,
        )
        assert wait_for_batch(client, batch.id).status == "completed"


def served(server: OgxServer, user: User, *, skip: set[str] = frozenset()) -> dict[str, Any]:
    """Everything ``user`` is served: prompts (default and every version), batches, connectors."""
    client = http(server, user)
    prompts = {p["prompt_id"]: p for p in client.get("/v1/prompts").json()["data"] if p["prompt_id"] not in skip}
    versions = {pid: client.get(f"/v1/prompts/{pid}/versions").json()["data"] for pid in prompts}
    batches = {b["id"]: b for b in client.get("/v1/batches", params={"limit": 100}).json()["data"]}
    batches = {bid: client.get(f"/v1/batches/{bid}").json() for bid in batches if bid not in skip}
    connectors = sorted(c["connector_id"] for c in client.get("/v1alpha/admin/connectors").json()["data"])
    return {"prompts": prompts, "versions": versions, "batches": batches, "connectors": connectors}


def add_pre_15_kv_entries(kv_db: Path) -> None:
    """Entries as OGX before 1.5 wrote them (prompts under namespace ``prompts``, the rest bare)."""
    versions = {1: "legacy v1", 2: "legacy {{ who }} v2"}
    with sqlite3.connect(kv_db) as db:
        db.execute("CREATE TABLE IF NOT EXISTS kvstore (key TEXT PRIMARY KEY, value TEXT, expiration TIMESTAMP)")
        rows = [
            (
                f"prompts:prompts:v1:{KV_PROMPT}:{n}",
                json.dumps(
                    {
                        "prompt_id": KV_PROMPT,
                        "prompt": text,
                        "version": n,
                        "variables": ["who"] if n == 2 else [],
                        "is_default": False,
                    }
                ),
            )
            for n, text in versions.items()
        ]
        rows.append((f"prompts:prompts:v1:{KV_PROMPT}:default", "2"))
        rows.append(("connectors:v1:legacy-mcp", json.dumps(KV_CONNECTOR | {"source": "config"})))
        rows.append((f"batch:{KV_BATCH['id']}", json.dumps(KV_BATCH)))
        db.executemany("INSERT INTO kvstore (key, value, expiration) VALUES (?, ?, NULL)", rows)


def migrate(dest: Path, source: Path, *extra: str) -> dict[str, Any]:
    result = run_cli(
        "migrate", str(dest), "--from", str(source), "--json", *extra, timeout=300, env={"OGX_TENANCY_PLUGINS": PLUGINS}
    )
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    report["exit"] = result.returncode
    return report


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_round_trip(backend, tmp_path):
    with (
        RecordingUpstream() as upstream,
        fresh_pg_database("ogxt_mig") if backend == "postgres" else nullcontext() as pg,
    ):
        state = tmp_path / "state"
        sql_backend = None
        if pg is not None:
            sql_backend = {
                "type": "sql_postgres",
                "host": pg["host"],
                "port": pg["port"],
                "db": pg["db"],
                "user": pg["user"],
            }
        wiki = {"connector_id": "wiki", "url": "http://wiki.invalid/mcp"}
        source = plain_ogx_config(
            state, upstream_url=upstream.openai_base_url, sql_backend=sql_backend, connectors=[wiki]
        )
        plain_dir = tmp_path / "plain"
        with OgxServer(source, plain_dir, plain_ogx=True) as plain:
            populate(plain)
            before = {user: served(plain, user) for user in USERS}
        add_pre_15_kv_entries(state / "kv.db")

        dest = services_config(
            state,
            upstream_url=upstream.openai_base_url,
            storage=storage_config(backend, state, pg["dsn"] if pg else None),
            connectors=[wiki, {k: KV_CONNECTOR[k] for k in ("connector_id", "url")}],
        )
        dest_dir = tmp_path / "tenancy"
        dest_dir.mkdir()
        dest_path = dest_dir / "run.yaml"
        dest_path.write_text(yaml.safe_dump(dest))
        source_path = plain_dir / "run.yaml"

        dry = migrate(dest_path, source_path, "--dry-run")
        assert dry["exit"] == 0 and dry["dry_run"], dry
        # 5 prompts by users + 1 from the KV store; wiki + legacy; 3 batches + 1 from the KV store
        counts = {"prompts": 6, "connectors": 2, "batches": 4}
        for kind, count in counts.items():
            assert (dry[kind]["source"], dry[kind]["created"]) == (count, count), (kind, dry[kind])

        first = migrate(dest_path, source_path)
        assert first["exit"] == 0 and first["ok"], first
        for kind, count in counts.items():
            assert (first[kind]["created"], first[kind]["already_present"]) == (count, 0), (kind, first[kind])
            assert first[kind]["verified"] and first[kind]["source_checksum"] == first[kind]["stored_checksum"]
        assert first["unmapped"] == []
        notes = {(n["kind"], n["note"]) for n in first["notes"]}
        assert ("prompts", "versions appended by other users now belong to the prompt's owner") in notes
        assert ("prompts", "pre-1.5 entry without an owner: now unowned") in notes

        with OgxServer(dest, dest_dir, env={"OGX_TENANCY_PLUGINS": PLUGINS}) as ours:
            legacy = {KV_PROMPT, KV_BATCH["id"]}
            for user in USERS:
                after = served(ours, user, skip=legacy)
                assert {k: v for k, v in after.items() if k != "connectors"} == {
                    k: v for k, v in before[user].items() if k != "connectors"
                }, user
                # OGX 1.5 in multi-tenant mode does not serve its own start-up connectors (owner "" and
                # tenant "") to tenant users; global connectors are served to every tenant here
                assert set(before[user]["connectors"]) <= {"wiki"} and after["connectors"] == ["legacy-mcp", "wiki"]
                # the pre-1.5 rows: unowned and global, so every user of every tenant is served them
                client = http(ours, user)
                legacy_prompt = client.get(f"/v1/prompts/{KV_PROMPT}").json()
                assert (legacy_prompt["version"], legacy_prompt["prompt"]) == (2, "legacy {{ who }} v2")
                assert [v["version"] for v in client.get(f"/v1/prompts/{KV_PROMPT}/versions").json()["data"]] == [1, 2]
                assert client.get(f"/v1/batches/{KV_BATCH['id']}").json()["status"] == "completed"

        second = migrate(dest_path, source_path)
        assert second["exit"] == 0 and second["ok"], second
        for kind, count in counts.items():
            assert (second[kind]["created"], second[kind]["already_present"]) == (0, count), (kind, second[kind])
            assert second[kind]["stored_checksum"] == first[kind]["stored_checksum"]


def test_migrate_reports_what_it_cannot_map(tmp_path):
    """A corrupt KV entry and a prompt id OGX never made: listed, the rest still copied."""
    state = tmp_path / "state"
    source = plain_ogx_config(state, upstream_url="http://127.0.0.1:9/v1")
    (tmp_path / "source.yaml").write_text(yaml.safe_dump(source))
    state.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(state / "kv.db") as db:
        db.execute("CREATE TABLE kvstore (key TEXT PRIMARY KEY, value TEXT, expiration TIMESTAMP)")
        db.executemany(
            "INSERT INTO kvstore VALUES (?, ?, NULL)",
            [
                ("batch:batch_broken0000001", "{not json"),
                ("prompts:v1:not-a-prompt-id:1", json.dumps({"prompt": "x", "version": 1})),
                (f"prompts:v1:{KV_PROMPT}:1", json.dumps({"prompt": "fine", "version": 1, "variables": []})),
                (f"prompts:v1:{KV_PROMPT}:default", "1"),
            ],
        )
    dest = services_config(state, upstream_url="http://127.0.0.1:9/v1", storage=storage_config("sqlite", state, None))
    (tmp_path / "dest.yaml").write_text(yaml.safe_dump(dest))
    report = migrate(tmp_path / "dest.yaml", tmp_path / "source.yaml")
    assert report["exit"] == 1 and not report["ok"]
    reasons = {(u["kind"], u["reason"]) for u in report["unmapped"]}
    assert ("batches", "not an OGX batch object") in reasons
    assert ("prompts", "prompt id 'not-a-prompt-id' is not an OGX prompt id") in reasons
    assert report["prompts"]["created"] == 1 and report["prompts"]["verified"]
    text = run_cli(
        "migrate",
        str(tmp_path / "dest.yaml"),
        "--from",
        str(tmp_path / "source.yaml"),
        env={"OGX_TENANCY_PLUGINS": PLUGINS},
    )
    assert text.returncode == 1
    assert (
        "could not map 2 item(s)" in text.stdout and "prompts: 1 in source, 0 created, 1 already present" in text.stdout
    )


def test_migrate_without_a_store_is_a_configuration_error(tmp_path):
    config = plain_ogx_config(tmp_path / "state", upstream_url="http://127.0.0.1:9/v1")
    del config["server"]["auth"]
    config["tenancy"] = {"plugins": {"header_identity": {}}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli("migrate", str(path), env={"OGX_TENANCY_PLUGINS": PLUGINS})
    assert result.returncode == 2 and "tenancy.storage" in result.stderr
