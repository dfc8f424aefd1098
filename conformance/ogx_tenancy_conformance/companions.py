"""Plugins the suite registers beside the one under test, to check that merging ignores order.

Each companion is a small, well-behaved plugin object; names are chosen so they sort both before
and after typical plugin names (merging sorts by name, pluggy calls in LIFO registration order).
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel

from ogx_tenancy import Identity, IncomingRequest, OutgoingRequest, hookimpl

COMPANION_ROLE = "conformance-companion"
COMPANION_HEADER = "x-conformance-companion"


class PartialIdentityCompanion:
    """Adds a role to every identified request, claiming no principal."""

    @hookimpl
    def ogx_tenancy_identity(self, request: IncomingRequest) -> Identity | None:
        return Identity(None, {"roles": [COMPANION_ROLE]})


class SilentCompanion:
    """Implements every per-request hook and always says nothing."""

    @hookimpl
    def ogx_tenancy_identity(self, request: IncomingRequest) -> Identity | None:
        return None

    @hookimpl
    def ogx_tenancy_extra_request_headers(self, request: OutgoingRequest) -> dict[str, str] | None:
        return None


class ClaimingCompanion:
    """Claims a principal on every request: with another claimant the request must be refused."""

    @hookimpl
    def ogx_tenancy_identity(self, request: IncomingRequest) -> Identity | None:
        return Identity("conformance-companion-user")


class HeaderCompanion:
    """Adds its own header, derived from the identity it is given."""

    @hookimpl
    def ogx_tenancy_extra_request_headers(self, request: OutgoingRequest, identity: Identity | None) -> dict[str, str]:
        who = identity.principal if identity is not None and identity.principal else ""
        return {COMPANION_HEADER: hashlib.sha256(who.encode()).hexdigest()[:16]}


class ConflictingHeaderCompanion:
    """Sets one given header to a value no plugin would choose: merging must refuse in every order."""

    def __init__(self, header: str):
        self.header = header

    @hookimpl
    def ogx_tenancy_extra_request_headers(self, request: OutgoingRequest) -> dict[str, str]:
        return {self.header: "conformance-conflicting-value"}


class _CompanionBackendConfig(BaseModel):
    pass


class BackendCompanion:
    """Registers one storage backend under a name of its own (never opened)."""

    def __init__(self, backend_name: str):
        self.backend_name = backend_name

    @hookimpl
    def ogx_tenancy_storage_backends(self, register) -> None:
        async def factory(config: BaseModel):
            raise RuntimeError("the conformance companion backend is never opened")

        register(self.backend_name, _CompanionBackendConfig, factory)
