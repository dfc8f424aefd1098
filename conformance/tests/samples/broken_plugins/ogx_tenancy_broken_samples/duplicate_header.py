"""An extractor that believes the last copy of a duplicated header (as OGX 1.5's upstream_header does)."""

from __future__ import annotations

from ogx_tenancy_sample_third_party import identity as acme
from ogx_tenancy_sample_third_party.conformance import AcmeIdentityHarness
from ogx_tenancy_sample_third_party.settings import AcmeSettings

from ogx_tenancy import Identity, IncomingRequest, hookimpl
from ogx_tenancy_conformance import ConformanceProfile


def _last_copy(request: IncomingRequest, header: str, settings: AcmeSettings) -> str:
    raw = request.headers.get_all_raw(header)
    return acme._decode(raw[-1], header, settings) if raw else ""  # THE DEFECT: duplicates are not refused


@hookimpl
def ogx_tenancy_settings_model() -> type[AcmeSettings]:
    return AcmeSettings


@hookimpl
def ogx_tenancy_identity(request: IncomingRequest, settings: AcmeSettings) -> Identity | None:
    original = acme._value
    acme._value = _last_copy
    try:
        return acme.identify(request, settings)
    finally:
        acme._value = original


class Profile(ConformanceProfile):
    identity = AcmeIdentityHarness
