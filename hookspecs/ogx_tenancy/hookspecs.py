"""The hook specifications: the extension points plugins implement.

Plugins register in the ``ogx_tenancy`` entry-point group and mark their functions with
``ogx_tenancy.hookimpl``. An implementation may accept a subset of a spec's arguments (never extra
ones, and never with defaults: pluggy does not pass arguments that have a default value).

The host calls every plugin's implementation itself, passing each plugin **its own** validated
settings, and merges the results with order-independent rules (``ogx_tenancy.merge``). Hooks are
synchronous and must not do I/O on the request path; anything asynchronous lives on the objects a
hook registers (storage backends).
"""

from __future__ import annotations

from typing import Any

import pluggy
from pydantic import BaseModel

from .store import BackendRegistrar
from .types import Identity, IncomingRequest, OutgoingRequest

PROJECT_NAME = "ogx_tenancy"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def ogx_tenancy_settings_model() -> type[BaseModel] | None:  # type: ignore[empty-body]
    """Declare the pydantic model of this plugin's ``tenancy.plugins.<name>`` settings block.

    **When:** once, at start-up, before any other hook.

    **Receives:** nothing.

    **Returns:** a pydantic model class, or None when the plugin takes no settings. The host
    validates the plugin's block with it (an absent block validates ``{}``; an unknown key or bad
    value stops start-up with a message naming the plugin, the key and what was expected) and passes
    the resulting instance as ``settings`` to this plugin's other hooks.

    **Merging:** none — each plugin's answer applies to that plugin only.
    """


@hookspec
def ogx_tenancy_identity(request: IncomingRequest, settings: Any) -> Identity | None:  # type: ignore[empty-body]
    """Establish who is calling from an incoming request.

    **When:** on every HTTP request and WebSocket handshake, before OGX sees it.

    **Receives:** ``request`` — method, path, socket peer and every value of every header (a
    duplicated header is visible); ``settings`` — this plugin's validated settings (or None).

    **Returns:** an ``Identity`` (possibly partial: attributes without a principal), or None when
    this plugin has nothing to say about the request. To refuse the request, raise
    ``IdentityRejected(status, reason, header=...)`` — the client then gets that 400/401/403 with a
    JSON error in OpenAI's shape; any other exception fails closed with a 401 and is logged.

    **Merging:** the host merges every non-None result: exactly one plugin may set the principal
    (two claims reject the request with 401, logging both plugin names); attributes are unioned per
    category, de-duplicated, in plugin-name order; all tenant ids given must be equal (else 401).
    No identity at all is a 401 unless the operator configured an anonymous identity.
    """


@hookspec
def ogx_tenancy_storage_backends(register: BackendRegistrar) -> None:
    """Register named storage backends (``sqlite``, ``postgres``, …).

    **When:** once, at start-up.

    **Receives:** ``register(name, config_model, factory)``: ``config_model`` is the pydantic model
    of the backend's config (``tenancy.storage.config``); ``factory`` is an async callable taking the
    validated config and returning a ``StorageBackend`` whose ``open_store`` returns an
    ``AccessControlledStore`` (see ``ogx_tenancy.store`` for the contract).

    **Returns:** nothing.

    **Merging:** backend names are global: two plugins registering one name is a start-up error
    naming both.
    """


@hookspec
def ogx_tenancy_extra_request_headers(  # type: ignore[empty-body]
    request: OutgoingRequest, identity: Identity | None, settings: Any
) -> dict[str, str] | None:
    """Add headers to a call an inference provider makes upstream (vLLM, llm-d, …).

    **When:** on every outgoing call a tenancy-aware provider makes, for a user (``identity`` set)
    or for no one (start-up model refresh, health checks: ``identity`` is None). Must be pure and
    fast — no I/O — and read the user only from ``identity``, never from globals.

    **Receives:** ``request`` — provider type and id, endpoint kind, model, streaming;
    ``identity`` — the merged identity of the user the call is made for; ``settings`` — this
    plugin's validated settings.

    **Returns:** header name -> value, or None.

    **Merging:** names are compared case-insensitively and returned lower-cased; the same header
    from two plugins with different values raises ``HeaderConflict`` naming both plugins — merged
    output never depends on plugin order.
    """
