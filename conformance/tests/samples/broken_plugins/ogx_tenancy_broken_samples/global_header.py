"""A header hook that reads the user from a module global its identity hook sets, not from ``identity``."""

from __future__ import annotations

from ogx_tenancy_sample_third_party.conformance import AcmeHeaderHarness, AcmeIdentityHarness
from ogx_tenancy_sample_third_party.headers import flow_headers
from ogx_tenancy_sample_third_party.identity import identify
from ogx_tenancy_sample_third_party.settings import AcmeSettings

from ogx_tenancy import Identity, IncomingRequest, OutgoingRequest, hookimpl
from ogx_tenancy_conformance import ConformanceProfile

_last_identity: Identity | None = None  # THE DEFECT: "the current user" kept in a global


@hookimpl
def ogx_tenancy_settings_model() -> type[AcmeSettings]:
    return AcmeSettings


@hookimpl
def ogx_tenancy_identity(request: IncomingRequest, settings: AcmeSettings) -> Identity | None:
    global _last_identity
    _last_identity = identify(request, settings)
    return _last_identity


@hookimpl
def ogx_tenancy_extra_request_headers(request: OutgoingRequest, identity: Identity | None) -> dict[str, str] | None:
    return flow_headers(_last_identity if identity is not None else None)


class Profile(ConformanceProfile):
    identity = AcmeIdentityHarness
    headers = AcmeHeaderHarness
