"""Helpers for the tests of the prompts, connectors and batches services against a real OGX.

* three tenants' users, identified by the ``header_identity`` test plugin (the same header names
  are given to plain OGX's ``upstream_header`` auth, so both servers see the same users);
* run configs: ``services_config`` (``ogx-tenancy run`` with ``tenancy.services``) and
  ``plain_ogx_config`` (OGX's own built-ins, for the migration source);
* a PostgreSQL database per test module (``fresh_pg_database``), an MCP server (``McpServer``);
* batch helpers over the ``openai`` client.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from .ogx import OgxServer, base_run_config, free_port

PG_ADMIN_DSN = os.environ.get("OGX_TENANCY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
# only these plugins load in the servers here, whatever else the environment has installed
PLUGINS = "header_identity,vllm_fairness,sql"
CHAT_MODEL = "vllm/test-chat"
FAIRNESS_HEADER = "x-gateway-inference-fairness-id"

# owners may do anything; team mates (same tenant) may read; everyone may read unowned rows
# (connectors). Under it OGX 1.5 still lets a team mate append versions to a prompt.
READ_SHARED_POLICY = [
    {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
    {"permit": {"actions": ["read"]}, "when": "user in owners teams"},
    {"permit": {"actions": ["read"]}, "when": "resource is unowned"},
]


@dataclass(frozen=True)
class User:
    name: str
    tenant: str
    team: str

    def headers(self) -> dict[str, str]:
        return {"x-test-user": self.name, "x-test-tenant": self.tenant, "x-test-teams": self.team}


ALICE = User("alice", "acme", "red")
BOB = User("bob", "acme", "red")  # alice's team mate
CAROL = User("carol", "globex", "red")  # same team name, other tenant
DAVE = User("dave", "initech", "green")
TENANT_USERS = (ALICE, CAROL, DAVE)  # one per tenant


def openai_client(server: OgxServer, user: User) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, default_headers=user.headers()
    )


def http(server: OgxServer, user: User) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers=user.headers(), timeout=60)


# -- run configs ----------------------------------------------------------------------------------


def inference_provider(upstream_url: str, *, tenancy_headers: bool = True) -> dict[str, Any]:
    if tenancy_headers:
        return {
            "provider_id": "vllm",
            "provider_type": "remote::vllm-tenancy",
            "module": "ogx_tenancy_vllm_fairness",
            "config": {"base_url": upstream_url},
        }
    return {"provider_id": "vllm", "provider_type": "remote::vllm", "config": {"base_url": upstream_url}}


def storage_config(backend: str, state_dir: Path, pg_dsn: str | None) -> dict[str, Any]:
    if backend == "sqlite":
        return {"backend": "sqlite", "config": {"path": str(state_dir / "tenancy.db")}}
    assert pg_dsn is not None
    return {"backend": "postgres", "config": {"dsn": pg_dsn, "pool_size": 4}}


def services_config(
    state_dir: Path,
    *,
    upstream_url: str,
    storage: Mapping[str, Any],
    connectors: list[dict[str, Any]] | None = None,
    tenant_connectors: Mapping[str, list[dict[str, Any]]] | None = None,
    policy: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``ogx-tenancy run`` with prompts, connectors and batches on our store, in multi-tenant mode."""
    config = base_run_config(state_dir, apis=["files", "prompts", "inference", "models", "batches"])
    config["providers"]["inference"] = [inference_provider(upstream_url)]
    config["connectors"] = connectors or []
    config["server"]["tenancy"] = {"mode": "multi"}
    if policy is not None:
        config["server"]["auth"] = {"access_policy": policy}
    config["tenancy"] = {
        "plugins": {"header_identity": {}, "vllm_fairness": {"sources": ["principal"], "header_names": "gie"}},
        "storage": dict(storage),
        "services": {
            "prompts": {},
            "connectors": {"tenants": dict(tenant_connectors or {})},
            "batches": {"max_concurrent_batches": 4},
        },
    }
    return config


def plain_ogx_config(
    state_dir: Path,
    *,
    upstream_url: str,
    sql_backend: Mapping[str, Any] | None = None,
    connectors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Plain OGX 1.5 (``ogx run``): built-in prompts, connectors and reference batches, identity from
    OGX's own ``upstream_header`` auth reading the same headers, multi-tenant mode."""
    config = base_run_config(state_dir, apis=["files", "prompts", "inference", "models", "batches"])
    if sql_backend is not None:
        config["storage"]["backends"]["sql_default"] = dict(sql_backend)
    config["providers"]["inference"] = [inference_provider(upstream_url, tenancy_headers=False)]
    config["providers"]["batches"] = [
        {
            "provider_id": "reference",
            "provider_type": "inline::reference",
            "config": {"sqlstore": {"backend": "sql_default", "table_name": "batches"}},
        }
    ]
    config["connectors"] = connectors or []
    config["server"]["tenancy"] = {"mode": "multi"}
    config["server"]["auth"] = {
        "provider_config": {
            "type": "upstream_header",
            "principal_header": "x-test-user",
            "tenant_header": "x-test-tenant",
            "attribute_headers": {"x-test-teams": "teams"},
        }
    }
    return config


# -- PostgreSQL -------------------------------------------------------------------------------------


def _admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:  # callers may be inside an event loop
        pool.submit(asyncio.run, run()).result()


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[dict[str, Any]]:
    """A new PostgreSQL database, dropped afterwards: ``{"dsn", "host", "port", "db", "user"}``."""
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_DSN).set(database=name)
    try:
        yield {
            "dsn": url.render_as_string(hide_password=False),
            "host": url.host or "127.0.0.1",
            "port": url.port or 5432,
            "db": name,
            "user": url.username or "postgres",
            "password": url.password,
        }
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- an MCP server for connectors --------------------------------------------------------------------

_MCP_MAIN = """
import sys, uvicorn
from mcp.server.mcpserver import MCPServer
server = MCPServer(sys.argv[1], instructions=sys.argv[1] + " for tests")

@server.tool()
def lookup(customer: str) -> str:
    '''Look a customer up.'''
    return "found " + customer

uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


class McpServer:
    """An MCP server (streamable HTTP at ``url``) named ``name`` with one tool, ``lookup``."""

    def __init__(self, name: str):
        self.name = name
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> McpServer:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _MCP_MAIN, self.name, str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url, timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("the MCP server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# -- batches ----------------------------------------------------------------------------------------


def upload_batch_input(client: openai.OpenAI, marker: str, lines: int = 3) -> str:
    body = "\n".join(
        json.dumps(
            {
                "custom_id": f"{marker}-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": CHAT_MODEL, "messages": [{"role": "user", "content": f"{marker} line {i}"}]},
            }
        )
        for i in range(lines)
    )
    return client.files.create(file=(f"{marker}.jsonl", io.BytesIO(body.encode())), purpose="batch").id


FINAL_BATCH_STATUSES = ("completed", "failed", "expired", "cancelled")


def wait_for_batch(client: openai.OpenAI, batch_id: str, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while (batch := client.batches.retrieve(batch_id)).status not in FINAL_BATCH_STATUSES:
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch.status}")
        time.sleep(0.3)
    return batch
