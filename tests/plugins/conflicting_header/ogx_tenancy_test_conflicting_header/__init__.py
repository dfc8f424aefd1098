"""A test plugin that sets one outgoing header to a fixed value, so that it can collide with another
plugin's header (e.g. the fairness id) and the host's conflict handling can be shown end to end.

Inert unless configured: with no ``header`` it adds nothing, and with ``principals`` it acts only for
those callers, so installing it next to other tests changes nothing for them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ogx_tenancy import Identity, OutgoingRequest, hookimpl


class ConflictingHeaderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    header: str | None = None
    value: str = "conflicting-value"
    principals: list[str] = []


@hookimpl
def ogx_tenancy_settings_model():
    return ConflictingHeaderSettings


@hookimpl
def ogx_tenancy_extra_request_headers(
    request: OutgoingRequest, identity: Identity | None, settings: ConflictingHeaderSettings
) -> dict[str, str] | None:
    if settings.header is None or identity is None:
        return None
    if settings.principals and identity.principal not in settings.principals:
        return None
    return {settings.header: settings.value}
