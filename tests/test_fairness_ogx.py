"""Fairness headers against a real OGX 1.5 started by ``ogx-tenancy run``, with the recording upstream
(``support/upstream.py``) standing in for vLLM and the ``remote::vllm-tenancy`` provider loaded with
``module: ogx_tenancy_vllm_fairness``.

Identity comes from the test plugin ``tests/plugins/header_identity`` (``x-test-user``,
``x-test-teams``, ``x-test-tenant``); ``tests/plugins/conflicting_header`` sets the fairness header to
another value for one principal, to show a conflict between plugins surfacing. Fairness ids are
opaque (keyed HMAC of the tenant), computed independently here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from support.ogx import OgxServer, base_run_config
from support.upstream import RecordedRequest, RecordingUpstream

pytestmark = pytest.mark.ogx_server

GIE_ID, GIE_OBJ = "x-gateway-inference-fairness-id", "x-gateway-inference-objective"
LLMD_ID, LLMD_OBJ = "x-llm-d-inference-fairness-id", "x-llm-d-inference-objective"
SCHEDULER_HEADERS = (GIE_ID, GIE_OBJ, LLMD_ID, LLMD_OBJ)
KEY = "integration-test-fairness-key"
SYSTEM_ID = "ogx-system"
CONFLICTING_PRINCIPAL = "mallory"
# Only these plugins load in the servers here, whatever else the environment has installed.
PLUGINS = "header_identity,vllm_fairness,conflicting_header"
CHAT_MODEL, EMBED_MODEL, RERANK_MODEL = "vllm/test-chat", "vllm/test-embed", "vllm/test-rerank"


def batches_config(state_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The batches provider under test, and any ``tenancy:`` keys it needs.

    OGX's built-in ``inline::reference`` for now. To re-point the batch test at another provider
    (ours, when it lands), change this function or set ``OGX_TENANCY_TEST_BATCHES_PROVIDER`` to a JSON
    object ``{"provider": <providers.batches entry>, "tenancy": <keys merged into tenancy:>}``.
    """
    override = os.environ.get("OGX_TENANCY_TEST_BATCHES_PROVIDER")
    if override:
        chosen = json.loads(override)
        return chosen["provider"], chosen.get("tenancy", {})
    provider = {"provider_id": "reference", "provider_type": "inline::reference",
                "config": {"sqlstore": {"backend": "sql_default", "table_name": "batches"}}}
    return provider, {}


def expected_id(tenant: str) -> str:
    return hmac.new(KEY.encode(), tenant.encode(), hashlib.sha256).hexdigest()[:16]


def expected_headers(tenant: str, teams: list[str]) -> dict[str, str]:
    objective = "premium" if "gold" in teams else "standard"
    return {GIE_ID: expected_id(tenant), LLMD_ID: expected_id(tenant), GIE_OBJ: objective, LLMD_OBJ: objective}


def scheduler_headers(request: RecordedRequest) -> dict[str, str]:
    """The scheduler headers of a recorded request; fails when one arrived twice."""
    return {name: value for name in SCHEDULER_HEADERS if (value := request.header(name)) is not None}


def identity_headers(user: str, tenant: str, teams: list[str]) -> dict[str, str]:
    return {"x-test-user": user, "x-test-tenant": tenant, "x-test-teams": ",".join(teams)}


def log_entries(server: OgxServer) -> list[str]:
    """The server log as entries: OGX's console format wraps one entry over indented lines."""
    entries: list[str] = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if line.startswith(" ") and entries:
            entries[-1] += " " + line.strip()
        else:
            entries.append(line.strip())
    return entries


def carrying(upstream: RecordingUpstream, marker: str) -> list[RecordedRequest]:
    return [r for r in upstream.requests() if r.body is not None and marker in json.dumps(r.body)]


@pytest.fixture(scope="module")
def upstream():
    # a small delay keeps many requests in flight at once in the concurrency test
    with RecordingUpstream(delay_s=0.05) as server:
        yield server


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fairness")
    config = base_run_config(workdir / "state", apis=["files", "inference", "models", "messages", "batches"])
    batches_provider, batches_tenancy = batches_config(workdir / "state")
    config["providers"].update({
        # 1,000 requests in flight saturate OGX's event loop on a 2-core machine: a connect can take
        # longer than the OpenAI client's default 5 s there, so allow more
        "inference": [{"provider_id": "vllm", "provider_type": "remote::vllm-tenancy",
                       "module": "ogx_tenancy_vllm_fairness",
                       "config": {"base_url": upstream.openai_base_url,
                                  "network": {"timeout": {"connect": 120, "read": 300}}}}],
        "messages": [{"provider_id": "builtin", "provider_type": "inline::builtin",
                      "config": {"kvstore": {"backend": "kv_default", "namespace": "message_batches"}}}],
        "batches": [batches_provider],
    })
    config["tenancy"] = {
        "plugins": {
            "vllm_fairness": {
                "sources": ["tenant"], "opaque_ids": {"key": KEY, "length": 16}, "system_id": SYSTEM_ID,
                "header_names": "both",
                "objective": {"attribute": "teams", "values": {"gold": "premium"}, "default": "standard"},
            },
            "conflicting_header": {"header": GIE_ID, "value": "mallory-flow", "principals": [CONFLICTING_PRINCIPAL]},
        },
        **batches_tenancy,
    }
    running = OgxServer(config, workdir, env={"OGX_TENANCY_PLUGINS": PLUGINS}).start()
    try:
        running.startup_requests = upstream.requests()  # type: ignore[attr-defined]
        upstream.clear()
        yield running
    finally:
        running.stop()


def client(server: OgxServer, user: str, tenant: str, teams: list[str], **extra_headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0,
                         default_headers={**identity_headers(user, tenant, teams), **extra_headers})


# -- start-up -----------------------------------------------------------------------------------------


def test_the_startup_model_refresh_is_made_for_no_user_and_carries_the_system_id(server):
    listings = [r for r in server.startup_requests if (r.method, r.path) == ("GET", "/v1/models")]
    assert listings, "OGX listed the upstream's models at start-up"
    for request in listings:
        assert scheduler_headers(request) == {GIE_ID: SYSTEM_ID, LLMD_ID: SYSTEM_ID}


# -- every endpoint kind --------------------------------------------------------------------------------


TEAMS = ["system:authenticated", "gold"]


def call_chat(server, marker, stream):
    c = client(server, "alice", "acme", TEAMS)
    result = c.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": marker}], stream=stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in result if chunk.choices) if stream \
        else result.choices[0].message.content
    assert text == f"echo: {marker}"


def call_completions(server, marker, stream):
    c = client(server, "alice", "acme", TEAMS)
    result = c.completions.create(model=CHAT_MODEL, prompt=marker, stream=stream)
    text = "".join(chunk.choices[0].text for chunk in result if chunk.choices) if stream else result.choices[0].text
    assert text == f"echo: {marker}"


def call_embeddings(server, marker, stream):
    result = client(server, "alice", "acme", TEAMS).embeddings.create(model=EMBED_MODEL, input=[marker])
    assert len(result.data) == 1


def post(server, path, body):
    response = httpx.post(f"{server.base_url}{path}", json=body, timeout=60,
                          headers=identity_headers("alice", "acme", TEAMS))
    assert response.status_code == 200, response.text
    return response


def call_messages(server, marker, stream):
    response = post(server, "/v1/messages", {"model": CHAT_MODEL, "max_tokens": 16, "stream": stream,
                                             "messages": [{"role": "user", "content": marker}]})
    assert f"echo: {marker}" in response.text


def call_count_tokens(server, marker, stream):
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": marker}]}
    assert post(server, "/v1/messages/count_tokens", body).json()["input_tokens"] == 3


def call_rerank(server, marker, stream):
    body = {"model": RERANK_MODEL, "query": marker, "items": ["first", "second"]}
    assert len(post(server, "/v1alpha/inference/rerank", body).json()["data"]) == 2


ENDPOINTS = {
    "chat": (call_chat, False, "/v1/chat/completions"),
    "chat-stream": (call_chat, True, "/v1/chat/completions"),
    "completions": (call_completions, False, "/v1/completions"),
    "completions-stream": (call_completions, True, "/v1/completions"),
    "embeddings": (call_embeddings, False, "/v1/embeddings"),
    "messages": (call_messages, False, "/v1/messages"),
    "messages-stream": (call_messages, True, "/v1/messages"),
    "count-tokens": (call_count_tokens, False, "/v1/messages/count_tokens"),
    "rerank": (call_rerank, False, "/rerank"),
}


@pytest.mark.parametrize("kind", list(ENDPOINTS))
def test_each_endpoint_kind_carries_the_callers_headers(server, upstream, kind):
    call, stream, path = ENDPOINTS[kind]
    marker = f"{kind}-{uuid.uuid4().hex}"
    call(server, marker, stream)
    (sent,) = carrying(upstream, marker)
    assert sent.path == path
    assert scheduler_headers(sent) == expected_headers("acme", TEAMS)
    assert not any("acme" in value for value in scheduler_headers(sent).values()), "the tenant name stays opaque"


def test_model_listing_for_a_user_carries_their_headers(server, upstream):
    upstream.clear()
    listed = client(server, "bob", "globex", ["silver"]).models.list()
    assert CHAT_MODEL in {m.id for m in listed.data}
    user_listings = [r for r in upstream.requests(path="/v1/models") if r.header(GIE_ID) != SYSTEM_ID]
    assert user_listings, "OGX asked the upstream for the user's models"
    for request in user_listings:
        assert scheduler_headers(request) == expected_headers("globex", ["silver"])


# -- what clients send is replaced -----------------------------------------------------------------------


def test_scheduler_headers_sent_by_the_client_or_in_provider_data_are_replaced(server, upstream):
    forged = {name: "vip-flow" for name in SCHEDULER_HEADERS}
    provider_data = json.dumps({**forged, "vllm_api_token": "tenant-token", "forward_headers": forged})
    c = client(server, "carol", "initech", ["silver"], **forged, **{"X-OGX-Provider-Data": provider_data})
    marker = f"forged-{uuid.uuid4().hex}"
    c.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": marker}],
                              extra_body={"extra_headers": forged})
    for chunk in c.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": marker}],
                                           stream=True):
        assert chunk is not None
    sent = carrying(upstream, marker)
    assert len(sent) == 2
    for request in sent:
        # header() fails when a name arrived twice: exactly one copy, ours
        assert scheduler_headers(request) == expected_headers("initech", ["silver"])
        assert request.header("authorization") == "Bearer tenant-token", "provider data itself still applies"


# -- 1,000 concurrent requests from 50 tenants ------------------------------------------------------------


def test_a_thousand_concurrent_requests_from_fifty_tenants_each_carry_their_own_id(server, upstream):
    tenants = [f"tenant-{t:02d}" for t in range(50)]
    teams = {tenant: ["system:authenticated", "gold" if t % 2 else "silver"] for t, tenant in enumerate(tenants)}

    async def run() -> list[str]:
        clients = {
            tenant: openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=300,
                                       default_headers=identity_headers(f"user-{tenant}", tenant, teams[tenant]))
            for tenant in tenants
        }

        async def one(tenant: str, n: int) -> str:
            marker = f"load {tenant} {n}"
            messages = [{"role": "user", "content": marker}]
            if n % 2:
                stream = await clients[tenant].chat.completions.create(model=CHAT_MODEL, messages=messages,
                                                                       stream=True)
                text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
            else:
                result = await clients[tenant].chat.completions.create(model=CHAT_MODEL, messages=messages)
                text = result.choices[0].message.content
            assert text == f"echo: {marker}"
            return marker

        try:
            return await asyncio.gather(*(one(tenant, n) for tenant in tenants for n in range(20)))
        finally:
            await asyncio.gather(*(c.close() for c in clients.values()))

    upstream.clear()
    markers = asyncio.run(run())
    assert len(markers) == 1000

    seen: dict[str, list[RecordedRequest]] = {}
    for request in upstream.requests(path="/v1/chat/completions"):
        content = request.body["messages"][0]["content"]
        if content.startswith("load "):
            seen.setdefault(content, []).append(request)
    missing = wrong = 0
    for marker in markers:
        tenant = marker.split()[1]
        (request,) = seen[marker]
        headers = scheduler_headers(request)
        if GIE_ID not in headers or LLMD_ID not in headers:
            missing += 1
        elif headers != expected_headers(tenant, teams[tenant]):
            wrong += 1
    assert (len(seen), missing, wrong) == (1000, 0, 0)
    assert sum(1 for requests in seen.values() for r in requests if r.stream) == 500


# -- batches ----------------------------------------------------------------------------------------------


def test_batch_driven_calls_carry_the_batch_creators_id(server, upstream, tmp_path):
    creators = {"dave": ("umbrella", ["gold"]), "erin": ("hooli", ["silver"])}
    batches = {}
    for user, (tenant, teams) in creators.items():
        c = client(server, user, tenant, teams)
        path = tmp_path / f"{user}.jsonl"
        path.write_text("".join(
            json.dumps({"custom_id": f"{user}-{i}", "method": "POST", "url": "/v1/chat/completions",
                        "body": {"model": CHAT_MODEL, "messages": [{"role": "user", "content": f"batch {user} {i}"}]}})
            + "\n" for i in range(5)))
        with path.open("rb") as f:
            file_id = c.files.create(file=f, purpose="batch").id
        batches[user] = (c, c.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                             completion_window="24h").id)
    deadline = time.monotonic() + 120
    for user, (c, batch_id) in batches.items():
        while (batch := c.batches.retrieve(batch_id)).status not in ("completed", "failed", "expired", "cancelled"):
            assert time.monotonic() < deadline, f"batch of {user} still {batch.status}"
            time.sleep(0.5)
        assert batch.status == "completed", batch
        assert batch.request_counts.completed == 5
    for user, (tenant, teams) in creators.items():
        sent = carrying(upstream, f"batch {user} ")
        assert len(sent) == 5
        for request in sent:
            assert scheduler_headers(request) == expected_headers(tenant, teams)


# -- a conflict between plugins ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_conflict_between_plugins_fails_the_call_clearly_and_is_logged(server, upstream, stream):
    marker = f"conflict-{uuid.uuid4().hex}"
    c = client(server, CONFLICTING_PRINCIPAL, "acme", ["gold"])
    with pytest.raises(openai.InternalServerError) as caught:
        c.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": marker}], stream=stream)
    message = str(caught.value)
    assert "'conflicting_header' and 'vllm_fairness'" in message and GIE_ID in message
    assert "mallory-flow" not in message, "header values are not echoed"
    assert carrying(upstream, marker) == [], "nothing was sent upstream"
    logged = [entry for entry in log_entries(server) if "outgoing header conflict" in entry]
    assert any("plugins=['conflicting_header', 'vllm_fairness']" in entry for entry in logged), logged
    # everyone else is unaffected
    call_chat(server, f"after-conflict-{uuid.uuid4().hex}", stream)
