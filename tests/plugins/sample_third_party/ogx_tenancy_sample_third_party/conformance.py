"""This plugin's declaration for the conformance suite (entry-point group ``ogx_tenancy_conformance``).

It tells the suite how the Acme gateway presents a user, what a forged request looks like, which
settings to test with and which capabilities the plugin has. Nothing here is needed at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ogx_tenancy import EndpointKind, IncomingRequest, RequestHeaders, StoreCapabilities
from ogx_tenancy_conformance import ConformanceProfile, HeaderHarness, IdentityHarness, StorageHarness, TestUser

from .headers import FLOW_HEADER
from .identity import EVERYONE, GROUPS, IDENTITY_HEADERS, ROLES, SIGNATURE, TENANT, USER, sign
from .store import MemoryBackend

SECRET = "conformance-test-secret-0123456789"
SETTINGS: Mapping[str, Any] = {"secret": SECRET}  # tenancy.plugins.sample_third_party, for every family
GATEWAY = ("10.1.2.3", 41000)


class AcmeIdentityHarness(IdentityHarness):
    settings = SETTINGS
    identity_headers = IDENTITY_HEADERS
    attribute_categories = ("teams", "roles")
    tenants = True
    pseudo_groups = (("teams", EVERYONE),)

    def _request(self, user: TestUser, secret: str) -> IncomingRequest:
        values = {
            USER: user.principal,
            GROUPS: ",".join(user.attributes.get("teams", ())),
            ROLES: ",".join(user.attributes.get("roles", ())),
            TENANT: user.tenant_id or "",
        }
        values[SIGNATURE] = sign(secret, values)
        pairs = [(name, value) for name, value in values.items() if value]
        return IncomingRequest("POST", "/v1/chat/completions", GATEWAY, RequestHeaders.from_pairs(pairs))

    def request_for(self, user: TestUser) -> IncomingRequest:
        return self._request(user, SECRET)

    def forged_request(self, user: TestUser) -> IncomingRequest:
        # a client cannot know the gateway's secret
        return self._request(user, "a-guess-at-the-gateway-secret")


class AcmeStorageHarness(StorageHarness):
    settings = SETTINGS
    backends = ("acme-memory",)
    expected_capabilities = {"acme-memory": StoreCapabilities(transactions=True, persistent=False)}

    async def raw_rows(self, backend: str, backend_object: Any, collection: str) -> list[Mapping[str, Any]] | None:
        assert isinstance(backend_object, MemoryBackend)
        return [
            {"id": r.id, "owner_principal": r.owner_principal, "tenant_id": r.tenant_id, **r.data}
            for r in backend_object.tables.get(collection, {}).values()
        ]


class AcmeHeaderHarness(HeaderHarness):
    settings = SETTINGS
    user_headers = (FLOW_HEADER,)
    endpoints = frozenset(EndpointKind)


class SampleProfile(ConformanceProfile):
    identity = AcmeIdentityHarness
    storage = AcmeStorageHarness
    headers = AcmeHeaderHarness
