"""Resource services built on the store contract: prompts, connectors and batches.

They know nothing about OGX: each takes ``AccessControlledStore`` objects opened on any conforming
backend, reads the caller from ``ogx_tenancy.context``, and raises either the store's errors
(``AccessDenied`` 403, ``RowNotFound`` 404, ``RowConflict`` 409, ``InvalidRowData`` 400) or a
``ServiceError`` subclass below. Every error carries its HTTP status in ``status``. The host adapter
(``ogx_tenancy.adapter``) turns them into OGX's API objects and errors.

A service is opened with a function that opens one store per collection, for example::

    from ogx_tenancy import host
    prompts = await PromptService.open(host.open_store)            # inside `ogx-tenancy run`
    prompts = await PromptService.open(lambda c: backend.open_store(c, policy))   # any backend

``<Service>.collections`` lists the collections a service needs, so a backend can be prepared (or a
conformance suite can open them) without knowing how the service uses them.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request a service refuses. ``status`` is the HTTP status; the message never echoes another
    tenant's data or the caller's attributes."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """The resource does not exist or the caller may not read it (never told apart)."""

    status = 404


class InvalidRequest(ServiceError):
    """The request is malformed: ``param`` names the offending parameter."""

    status = 400

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param


class Conflict(ServiceError):
    """The request conflicts with the resource's current state."""

    status = 409


def require_system_context(what: str) -> None:
    """Refuse ``what`` (a migration-only write or read) unless the code entered a system context."""
    from ..context import SystemContext, current_actor
    from ..store import AccessDenied

    if not isinstance(current_actor(), SystemContext):
        raise AccessDenied(f"{what}: only in a system context")


__all__ = ["Conflict", "InvalidRequest", "NotFound", "ServiceError", "require_system_context"]
