"""Prompts, connectors and batches served from our store by a real OGX 1.5 through
``ogx-tenancy run``, as users of three tenants, on SQLite and on PostgreSQL.

Identity comes from the ``header_identity`` test plugin; inference goes to the recording upstream
(``support/upstream.py``) through ``remote::vllm-tenancy``, whose fairness header here is the
caller's principal — so a recorded request names the user it was made for. Connectors point at
real MCP servers. The access policy lets team mates read each other's rows and only owners change
them (``READ_SHARED_POLICY``).
"""

from __future__ import annotations

import uuid
from contextlib import nullcontext

import openai
import pytest
from support.ogx import OgxServer
from support.services import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    FAIRNESS_HEADER,
    PLUGINS,
    READ_SHARED_POLICY,
    TENANT_USERS,
    McpServer,
    fresh_pg_database,
    http,
    openai_client,
    services_config,
    storage_config,
    upload_batch_input,
    wait_for_batch,
)
from support.upstream import RecordingUpstream

pytestmark = pytest.mark.ogx_server

BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def upstream():
    with RecordingUpstream() as running:
        yield running


@pytest.fixture(scope="module")
def mcp():
    with McpServer("wiki") as wiki, McpServer("acme-crm") as acme, McpServer("globex-crm") as globex:
        yield {"wiki": wiki, "acme": acme, "globex": globex}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, upstream, mcp, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"services-{request.param}")
    with fresh_pg_database("ogxt_svc") if request.param == "postgres" else nullcontext() as pg:
        config = services_config(
            workdir / "state",
            upstream_url=upstream.openai_base_url,
            storage=storage_config(request.param, workdir / "state", pg["dsn"] if pg else None),
            connectors=[{"connector_id": "wiki", "url": mcp["wiki"].url}],
            tenant_connectors={
                "acme": [{"connector_id": "crm", "url": mcp["acme"].url, "server_label": "crm"}],
                "globex": [{"connector_id": "crm", "url": mcp["globex"].url}],
            },
            policy=READ_SHARED_POLICY,
        )
        with OgxServer(config, workdir, env={"OGX_TENANCY_PLUGINS": PLUGINS}) as running:
            yield running


def create_prompt(server, user, text, variables=()):
    response = http(server, user).post("/v1/prompts", json={"prompt": text, "variables": list(variables)})
    assert response.status_code == 200, response.text
    return response.json()


# -- prompts ------------------------------------------------------------------------------------------


def test_prompts_are_isolated_between_tenants(server):
    mine = {user.name: create_prompt(server, user, f"prompt of {user.name}")["prompt_id"] for user in TENANT_USERS}
    for user in TENANT_USERS:
        client = http(server, user)
        listed = {p["prompt_id"] for p in client.get("/v1/prompts").json()["data"]}
        assert mine[user.name] in listed
        for other in TENANT_USERS:
            if other is user:
                continue
            stolen = mine[other.name]
            assert stolen not in listed
            for method, path, body in (
                ("GET", f"/v1/prompts/{stolen}", None),
                ("GET", f"/v1/prompts/{stolen}?version=1", None),
                ("GET", f"/v1/prompts/{stolen}/versions", None),
                ("PUT", f"/v1/prompts/{stolen}", {"prompt": "mine now", "version": 1}),
                ("PUT", f"/v1/prompts/{stolen}/set-default-version", {"version": 1}),
                ("DELETE", f"/v1/prompts/{stolen}", None),
            ):
                response = client.request(method, path, json=body)
                assert response.status_code == 404, (method, path, response.text)
                assert other.name not in response.text
    for user in TENANT_USERS:  # nothing of theirs changed
        prompt = http(server, user).get(f"/v1/prompts/{mine[user.name]}").json()
        assert (prompt["version"], prompt["prompt"]) == (1, f"prompt of {user.name}")


def test_a_reader_cannot_append_a_version(server):
    prompt_id = create_prompt(server, ALICE, "alice's {{ tone }} prompt", ["tone"])["prompt_id"]
    bob = http(server, BOB)
    assert bob.get(f"/v1/prompts/{prompt_id}").json()["prompt"] == "alice's {{ tone }} prompt"  # he may read
    refused = bob.put(f"/v1/prompts/{prompt_id}", json={"prompt": "bob's", "version": 1})
    assert refused.status_code == 403, refused.text
    assert "Permission denied" in refused.text and "red" not in refused.text  # never the caller's attributes
    assert bob.put(f"/v1/prompts/{prompt_id}/set-default-version", json={"version": 1}).status_code == 403
    assert bob.delete(f"/v1/prompts/{prompt_id}").status_code == 403
    versions = http(server, ALICE).get(f"/v1/prompts/{prompt_id}/versions").json()["data"]
    assert [v["version"] for v in versions] == [1]
    updated = http(server, ALICE).put(f"/v1/prompts/{prompt_id}", json={"prompt": "v2", "version": 1})
    assert updated.status_code == 200 and updated.json()["version"] == 2


def test_update_returns_the_truth_about_the_default(server):
    alice = http(server, ALICE)
    prompt_id = create_prompt(server, ALICE, "v1")["prompt_id"]
    v2 = alice.put(f"/v1/prompts/{prompt_id}", json={"prompt": "v2", "version": 1, "set_as_default": True}).json()
    assert (v2["version"], v2["is_default"]) == (2, True)
    v3 = alice.put(f"/v1/prompts/{prompt_id}", json={"prompt": "v3", "version": 2, "set_as_default": False}).json()
    assert (v3["version"], v3["is_default"]) == (3, False)
    assert alice.get(f"/v1/prompts/{prompt_id}").json()["prompt"] == "v2"
    stale = alice.put(f"/v1/prompts/{prompt_id}", json={"prompt": "v4", "version": 2})
    assert stale.status_code == 400 and "latest" in stale.text
    versions = alice.get(f"/v1/prompts/{prompt_id}/versions").json()["data"]
    assert [(v["version"], v["is_default"]) for v in versions] == [(1, False), (2, True), (3, False)]
    assert alice.put(f"/v1/prompts/{prompt_id}/set-default-version", json={"version": 3}).json()["is_default"]
    assert alice.get(f"/v1/prompts/{prompt_id}").json()["version"] == 3


# -- connectors -----------------------------------------------------------------------------------


def test_each_tenant_sees_global_and_its_own_connectors(server, mcp):
    expected = {
        ALICE: {"wiki": mcp["wiki"].url, "crm": mcp["acme"].url},
        CAROL: {"wiki": mcp["wiki"].url, "crm": mcp["globex"].url},
        DAVE: {"wiki": mcp["wiki"].url},
    }
    for user, connectors in expected.items():
        client = http(server, user)
        listed = client.get("/v1alpha/admin/connectors").json()["data"]
        assert {c["connector_id"]: c["url"] for c in listed} == connectors
        for connector_id, url in connectors.items():
            detail = client.get(f"/v1alpha/admin/connectors/{connector_id}")
            assert detail.status_code == 200, detail.text
            # OGX's own semantics: server details fetched live from that MCP server
            assert (detail.json()["url"], detail.json()["server_name"]) == (
                url,
                {mcp["wiki"].url: "wiki", mcp["acme"].url: "acme-crm", mcp["globex"].url: "globex-crm"}[url],
            )
            tools = client.get(f"/v1alpha/admin/connectors/{connector_id}/tools").json()["data"]
            assert [t["name"] for t in tools] == ["lookup"]
            assert client.get(f"/v1alpha/admin/connectors/{connector_id}/tools/lookup").json()["name"] == "lookup"
    for path in ("/v1alpha/admin/connectors/crm", "/v1alpha/admin/connectors/crm/tools"):
        response = http(server, DAVE).get(path)
        assert response.status_code == 404, response.text


# -- batches --------------------------------------------------------------------------------------


def test_batches_are_isolated_and_keys_are_per_tenant(server, upstream):
    key = f"nightly-{uuid.uuid4().hex[:8]}"
    created = {}
    for user in TENANT_USERS:
        client = openai_client(server, user)
        marker = f"batch-of-{user.name}-{key}"
        batch = client.batches.create(
            input_file_id=upload_batch_input(client, marker),
            endpoint="/v1/chat/completions",
            completion_window="24h",
            extra_body={"idempotency_key": key},
        )
        created[user] = (batch.id, marker)
        # a retry with the same key is the same batch
        again = client.batches.create(
            input_file_id=batch.input_file_id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            extra_body={"idempotency_key": key},
        )
        assert again.id == batch.id
    assert len({batch_id for batch_id, _ in created.values()}) == 3

    for user, (batch_id, marker) in created.items():
        client = openai_client(server, user)
        batch = wait_for_batch(client, batch_id)
        assert batch.status == "completed", batch
        assert batch.request_counts.completed == 3
        output = client.files.content(batch.output_file_id).text
        assert output.count(f"echo: {marker} line") == 3
        listed = {b.id for b in client.batches.list(limit=100)}
        assert batch_id in listed
        for other, (other_id, _) in created.items():
            if other is user:
                continue
            assert other_id not in listed
            with pytest.raises(openai.NotFoundError):
                client.batches.retrieve(other_id)
            with pytest.raises(openai.NotFoundError):
                client.batches.cancel(other_id)
        with pytest.raises(openai.ConflictError):
            client.batches.cancel(batch_id)  # completed

        # every inference call made for the batch carried its creator's identity
        sent = [r for r in upstream.requests(path="/v1/chat/completions") if marker in str(r.body)]
        assert len(sent) == 3
        assert {r.header(FAIRNESS_HEADER) for r in sent} == {user.name}
    # refusals are answered, not re-raised to uvicorn (which would drop the connection)
    assert "Exception in ASGI application" not in server.log_path.read_text()


def test_reusing_a_key_with_other_parameters_is_a_409(server):
    client = openai_client(server, DAVE)
    key = f"reuse-{uuid.uuid4().hex[:8]}"
    first = upload_batch_input(client, f"reuse-a-{key}")
    client.batches.create(
        input_file_id=first,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_body={"idempotency_key": key},
    )
    with pytest.raises(openai.ConflictError):
        client.batches.create(
            input_file_id=upload_batch_input(client, f"reuse-b-{key}"),
            endpoint="/v1/chat/completions",
            completion_window="24h",
            extra_body={"idempotency_key": key},
        )


def test_bad_batch_requests_are_4xx(server):
    response = http(server, ALICE).post(
        "/v1/batches", json={"input_file_id": "file-x", "endpoint": "/v1/responses", "completion_window": "24h"}
    )
    assert response.status_code == 400 and "endpoint" in response.text
