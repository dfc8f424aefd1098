"""The outer ASGI middleware: identity hooks in front of OGX's own app."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import structlog

from ogx_tenancy.context import acting_as
from ogx_tenancy.host import Tenancy
from ogx_tenancy.types import IdentityRejected, IncomingRequest, RequestHeaders

from .ogx_bridge import IDENTITY_SCOPE_KEYS, SCOPE_ATTRIBUTES, SCOPE_CLIENT_ID, SCOPE_PRINCIPAL, SCOPE_TENANT

log = structlog.get_logger("ogx_tenancy.adapter")

ASGIApp = Callable[..., Any]

_NO_IDENTITY = IdentityRejected(401, "authentication required: no identity was established for this request")


class IdentityMiddleware:
    """Calls the identity hooks on every HTTP request and WebSocket handshake.

    The merged Identity is handed to OGX through the scope keys its ``ProviderDataMiddleware``
    reads (so OGX's own stores, policy and tenancy see the same user), and set as the current actor
    for our stores and header hooks. Rejections get their 4xx with an OpenAI-shaped JSON error; no
    identity is a 401, except on routes OGX itself serves publicly (health, version).
    """

    def __init__(self, app: ASGIApp, tenancy: Tenancy, is_public_route: Callable[[str, str], bool]):
        self.app = app
        self.tenancy = tenancy
        self.is_public_route = is_public_route

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, _freezing_heap_after_startup(send))
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        # whatever set these before us (a proxy, a test client) is not believed
        for key in IDENTITY_SCOPE_KEYS:
            scope.pop(key, None)
        client = scope.get("client")
        request = IncomingRequest(
            method=scope.get("method", "GET"),
            path=scope.get("path", ""),
            client=(client[0], client[1]) if client else None,
            headers=RequestHeaders(scope.get("headers", ())),
        )
        try:
            identity = self.tenancy.identify(request)
        except IdentityRejected as rejection:
            log.info("request refused", status=rejection.status, path=request.path, header=rejection.header)
            return await _refuse(scope, send, rejection)
        if identity is None:
            if scope["type"] == "http" and self.is_public_route(request.method, request.path):
                return await _serve(self.app, scope, receive, send)
            return await _refuse(scope, send, _NO_IDENTITY)
        scope[SCOPE_PRINCIPAL] = identity.principal
        scope[SCOPE_ATTRIBUTES] = identity.attributes_as_lists()
        scope[SCOPE_CLIENT_ID] = identity.principal
        if identity.tenant_id:
            scope[SCOPE_TENANT] = identity.tenant_id
        with acting_as(identity):
            await _serve(self.app, scope, receive, send)


def _freezing_heap_after_startup(send: Any) -> Any:
    """``send`` that moves everything alive once start-up completed (modules, OGX's routers and
    providers, the plugins) out of the garbage collector's reach.

    That start-up heap lives as long as the server; left in the collector's generations, every full
    collection walks it again, which costs each request more CPU the more is loaded.
    """

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            gc.collect()
            gc.freeze()
        await send(message)

    return lifespan_send


async def _serve(app: ASGIApp, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Run the app; an error raised after the response was fully sent is logged, not re-raised.

    Starlette re-raises an exception its generic handler already answered (OGX's handler printed the
    traceback). Passed on to uvicorn, it drops the connection of a completed response and stalls
    the event loop while the traceback is rendered again.
    """
    completed = False

    async def tracking_send(message: dict[str, Any]) -> None:
        nonlocal completed
        await send(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            completed = True

    try:
        await app(scope, receive, tracking_send)
    except Exception as e:
        if not completed:
            raise
        log.warning("request failed after its response was sent", path=scope.get("path"), error=type(e).__name__)


async def _refuse(scope: dict[str, Any], send: Any, rejection: IdentityRejected) -> None:
    if scope["type"] == "websocket":
        # refuse the handshake before accepting it; 44xx mirrors the HTTP status (OGX does the same)
        await send({"type": "websocket.close", "code": 4000 + rejection.status})
        return
    body = rejection.to_json_bytes()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if rejection.status == 401:
        headers.append((b"www-authenticate", b'Gateway realm="ogx"'))
    await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
