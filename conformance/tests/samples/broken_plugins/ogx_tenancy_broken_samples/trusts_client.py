"""An extractor that takes identity headers from any client, signed or not."""

from __future__ import annotations

from ogx_tenancy_sample_third_party import identity as acme
from ogx_tenancy_sample_third_party.conformance import AcmeIdentityHarness
from ogx_tenancy_sample_third_party.settings import AcmeSettings

from ogx_tenancy import Identity, IncomingRequest, hookimpl
from ogx_tenancy_conformance import ConformanceProfile


@hookimpl
def ogx_tenancy_settings_model() -> type[AcmeSettings]:
    return AcmeSettings


@hookimpl
def ogx_tenancy_identity(request: IncomingRequest, settings: AcmeSettings) -> Identity | None:
    values = {h: acme._value(request, h, settings) for h in acme.IDENTITY_HEADERS}
    if not values[acme.USER]:
        return None
    # THE DEFECT: the signature is never checked
    teams = acme._split(values[acme.GROUPS])
    roles = acme._split(values[acme.ROLES])
    attributes = {k: v for k, v in {"teams": teams, "roles": roles}.items() if v}
    return Identity(values[acme.USER], attributes, values[acme.TENANT] or None)


class Profile(ConformanceProfile):
    identity = AcmeIdentityHarness
