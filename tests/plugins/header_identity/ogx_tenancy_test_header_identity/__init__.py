"""A minimal identity plugin for tests: the principal, teams and tenant come from plain headers.

It trusts the headers blindly, which only a test may do.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ogx_tenancy import Identity, IncomingRequest, hookimpl


class HeaderIdentitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal_header: str = "x-test-user"
    teams_header: str = "x-test-teams"
    tenant_header: str = "x-test-tenant"


@hookimpl
def ogx_tenancy_settings_model():
    return HeaderIdentitySettings


@hookimpl
def ogx_tenancy_identity(request: IncomingRequest, settings: HeaderIdentitySettings) -> Identity | None:
    principal = request.headers.get_single(settings.principal_header)
    if not principal:
        return None
    teams = request.headers.get_single(settings.teams_header)
    return Identity(
        principal=principal,
        attributes={"teams": [t.strip() for t in teams.split(",") if t.strip()]} if teams else {},
        tenant_id=request.headers.get_single(settings.tenant_header) or None,
    )
