"""Who is acting right now: the request's Identity, or an explicitly named system context.

Stores and services ask ``current_actor()``. A request's Identity is set by the host adapter for the
duration of the request (asyncio tasks spawned from it inherit it). Work with no user — start-up
registration, migrations — must enter ``system_context(reason)`` on purpose; with neither, stores deny.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from .types import Identity

log = structlog.get_logger("ogx_tenancy.context")


@dataclass(frozen=True, slots=True)
class SystemContext:
    """Identity-less work the code asked for by name.

    :param reason: why (logged), e.g. ``"startup connector registration"``.
    :param tenant_id: rows created here belong to this tenant; None means global rows.
    """

    reason: str
    tenant_id: str | None = None


Actor = Identity | SystemContext

_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("ogx_tenancy_actor", default=None)

# Where an identity comes from when none was set here, e.g. OGX's own request context in a
# background job that OGX restored. The host adapter installs it; it must be cheap.
_fallback_source: Callable[[], Identity | None] | None = None


def set_fallback_identity_source(source: Callable[[], Identity | None] | None) -> None:
    """Install (or remove) a function consulted when no actor was set in this context."""
    global _fallback_source
    _fallback_source = source


def current_actor() -> Actor | None:
    """The Identity or SystemContext in effect, or None (which stores must deny)."""
    actor = _actor.get()
    if actor is None and _fallback_source is not None:
        return _fallback_source()
    return actor


def current_identity() -> Identity | None:
    """The Identity of the user being served, or None (no user, or inside a system context)."""
    actor = current_actor()
    return actor if isinstance(actor, Identity) else None


class acting_as:  # lower-case: used like the context-manager function it replaces
    """Run the enclosed code as ``identity`` (the adapter does this per request).

    A class rather than a generator-based context manager: it runs on every request.
    """

    __slots__ = ("_identity", "_token")

    def __init__(self, identity: Identity):
        if not isinstance(identity, Identity) or identity.principal is None:
            raise TypeError("acting_as needs a complete Identity with a principal")
        self._identity = identity

    def __enter__(self) -> Identity:
        self._token = _actor.set(self._identity)
        return self._identity

    def __exit__(self, *exc: object) -> None:
        _actor.reset(self._token)


@contextmanager
def system_context(reason: str, *, tenant_id: str | None = None) -> Iterator[SystemContext]:
    """Run the enclosed code as the system, for identity-less work that must be allowed.

    Stores allow every action here and stamp created rows as unowned (or with an owner given
    explicitly, as migrations do). Use it only for work no user asked for.
    """
    if not reason or not reason.strip():
        raise ValueError("system_context needs a reason")
    ctx = SystemContext(reason=reason, tenant_id=tenant_id)
    log.info("entering system context", reason=reason, tenant_id=tenant_id)
    token = _actor.set(ctx)
    try:
        yield ctx
    finally:
        _actor.reset(token)
