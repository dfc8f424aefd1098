"""A sample third-party ogx-tenancy plugin: Acme gateway identity, an in-memory store, a flow header."""

from __future__ import annotations

from ogx_tenancy import Identity, IncomingRequest, OutgoingRequest, hookimpl
from ogx_tenancy.store import BackendRegistrar

from .headers import flow_headers
from .identity import identify
from .settings import AcmeSettings
from .store import MemoryBackendConfig, open_memory_backend


@hookimpl
def ogx_tenancy_settings_model() -> type[AcmeSettings]:
    return AcmeSettings


@hookimpl
def ogx_tenancy_identity(request: IncomingRequest, settings: AcmeSettings) -> Identity | None:
    return identify(request, settings)


@hookimpl
def ogx_tenancy_storage_backends(register: BackendRegistrar) -> None:
    register("acme-memory", MemoryBackendConfig, open_memory_backend)


@hookimpl
def ogx_tenancy_extra_request_headers(request: OutgoingRequest, identity: Identity | None) -> dict[str, str] | None:
    return flow_headers(identity)
