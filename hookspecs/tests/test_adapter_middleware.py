"""IdentityMiddleware driven directly as an ASGI app (OGX is exercised in tests/test_host_ogx.py)."""

from __future__ import annotations

import gc
import json

import pytest
from core_helpers import make_module

from ogx_tenancy import hookimpl
from ogx_tenancy.adapter.middleware import IdentityMiddleware
from ogx_tenancy.context import current_identity
from ogx_tenancy.host import Tenancy
from ogx_tenancy.types import Identity, IdentityRejected


@hookimpl
def ogx_tenancy_identity(request):
    if request.headers.get_single("x-reject"):
        raise IdentityRejected(403, "not from there", header="x-reject")
    user = request.headers.get_single("x-user")
    return Identity(user, {"teams": ["a", "b"]}, "t1") if user else None


class Inner:
    def __init__(self):
        self.calls = []

    async def __call__(self, scope, receive, send):
        self.calls.append((dict(scope), current_identity()))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def app(manager):
    manager.register(make_module("mod_mw", ogx_tenancy_identity=ogx_tenancy_identity), "mw")
    inner = Inner()
    middleware = IdentityMiddleware(inner, Tenancy.from_config(None, manager=manager), lambda m, p: p == "/v1/health")
    return middleware, inner


async def call(app, path="/v1/files", headers=(), scope_type="http", extra_scope=None):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": scope_type,
        "method": "GET",
        "path": path,
        "client": ("10.1.2.3", 4444),
        "headers": [(k.encode(), v.encode()) for k, v in headers],
        **(extra_scope or {}),
    }
    await app(scope, receive, send)
    return sent


async def test_identity_reaches_ogx_scope_keys_and_the_current_actor(app):
    middleware, inner = app
    sent = await call(middleware, headers=[("x-user", "alice")])
    assert sent[0]["status"] == 200
    scope, identity = inner.calls[0]
    assert (scope["principal"], scope["user_attributes"], scope["tenant_id"]) == ("alice", {"teams": ["a", "b"]}, "t1")
    assert identity == Identity("alice", {"teams": ["a", "b"]}, "t1")
    assert current_identity() is None  # reset after the request


async def test_identity_scope_keys_from_before_us_are_not_believed(app):
    middleware, inner = app
    spoofed = {"principal": "root", "user_attributes": {"roles": ["admin"]}, "tenant_id": "t0"}
    sent = await call(middleware, path="/v1/health", extra_scope=spoofed)
    assert sent[0]["status"] == 200
    scope, identity = inner.calls[0]
    assert not {"principal", "user_attributes", "tenant_id"} & scope.keys() and identity is None


async def test_no_identity_is_a_401_openai_error(app):
    middleware, inner = app
    sent = await call(middleware)
    assert sent[0]["status"] == 401 and not inner.calls
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    body = json.loads(sent[1]["body"])
    assert body["error"]["type"] == "authentication_error" and body["error"]["message"]


async def test_public_route_without_identity_passes(app):
    middleware, _ = app
    assert (await call(middleware, path="/v1/health"))[0]["status"] == 200


async def test_rejection_keeps_its_status_and_names_the_header(app):
    middleware, inner = app
    sent = await call(middleware, path="/v1/health", headers=[("x-reject", "1"), ("x-user", "alice")])
    assert sent[0]["status"] == 403 and not inner.calls
    assert json.loads(sent[1]["body"])["error"]["param"] == "x-reject"


async def test_duplicated_identity_header_is_a_400(app):
    middleware, inner = app
    sent = await call(middleware, headers=[("x-user", "alice"), ("x-user", "bob")])
    assert sent[0]["status"] == 400 and not inner.calls


async def test_websocket_without_identity_is_refused_before_accept(app):
    middleware, inner = app
    sent = await call(middleware, scope_type="websocket")
    assert sent == [{"type": "websocket.close", "code": 4401}] and not inner.calls


async def test_lifespan_passes_through(app):
    middleware, inner = app
    await middleware({"type": "lifespan"}, None, _noop_send)
    assert inner.calls[0][0] == {"type": "lifespan"}


async def _noop_send(message):
    return None


async def test_heap_is_frozen_once_startup_completed(manager):
    """The start-up heap leaves the collector's generations, so full collections stop walking it."""
    loaded_at_startup = [object()]

    def collector_walks_it() -> bool:
        return any(obj is loaded_at_startup for obj in gc.get_objects())

    async def starts_up(scope, receive, send):
        assert collector_walks_it(), "frozen before start-up completed"
        await send({"type": "lifespan.startup.complete"})

    sent = []

    async def send(message):
        sent.append(message)

    gc.unfreeze()
    middleware = IdentityMiddleware(starts_up, Tenancy.from_config(None, manager=manager), lambda m, p: False)
    try:
        await middleware({"type": "lifespan"}, None, send)
        assert not collector_walks_it()
        assert sent == [{"type": "lifespan.startup.complete"}]
    finally:
        gc.unfreeze()


class RespondsThenRaises:
    """What Starlette does with an error its generic handler already answered."""

    def __init__(self, respond: bool):
        self.respond = respond

    async def __call__(self, scope, receive, send):
        if self.respond:
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
        raise RuntimeError("handled upstream")


async def test_error_after_a_completed_response_is_not_reraised(manager):
    manager.register(make_module("mod_mw2", ogx_tenancy_identity=ogx_tenancy_identity), "mw2")
    tenancy = Tenancy.from_config(None, manager=manager)
    sent = await call(
        IdentityMiddleware(RespondsThenRaises(True), tenancy, lambda m, p: False), headers=[("x-user", "a")]
    )
    assert sent[0]["status"] == 500
    with pytest.raises(RuntimeError):
        await call(
            IdentityMiddleware(RespondsThenRaises(False), tenancy, lambda m, p: False), headers=[("x-user", "a")]
        )
