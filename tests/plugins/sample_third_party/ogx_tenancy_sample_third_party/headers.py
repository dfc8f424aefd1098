"""The outgoing flow header: one scheduling flow per tenant (or per user without a tenant)."""

from __future__ import annotations

import hashlib

from ogx_tenancy import Identity

FLOW_HEADER = "x-acme-flow"


def flow_headers(identity: Identity | None) -> dict[str, str] | None:
    if identity is None or identity.principal is None:
        return None
    key = f"tenant:{identity.tenant_id}" if identity.tenant_id else f"user:{identity.principal}"
    return {FLOW_HEADER: hashlib.sha256(key.encode()).hexdigest()[:24]}
