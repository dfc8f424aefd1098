"""This plugin's declaration for the conformance suite (entry-point group ``ogx_tenancy_conformance``).

Loaded only by ``ogx-tenancy-conformance plugin maas``; nothing here runs in a server. The suite's
users are presented as the MaaS gateway does: ``X-MaaS-Username``, ``X-MaaS-Group`` (a JSON array,
with the pseudo-group every user has) and ``X-MaaS-Subscription`` (the tenant), from the gateway's
address; a forged request is the same headers from an address outside ``trusted_proxy_cidrs``.
"""

from __future__ import annotations

import json

from ogx_tenancy import IncomingRequest, RequestHeaders
from ogx_tenancy_conformance import ConformanceProfile, IdentityHarness, TestUser

GATEWAY = ("10.20.30.40", 51000)
CLIENT = ("192.0.2.10", 51000)  # not in trusted_proxy_cidrs


class MaasIdentityHarness(IdentityHarness):
    settings = {"trusted_proxy_cidrs": ["10.0.0.0/8"], "tenant_from_attribute": "namespaces"}
    identity_headers = ("X-MaaS-Username", "X-MaaS-Group", "X-MaaS-Subscription")
    attribute_categories = ("teams",)
    tenants = True
    pseudo_groups = (("teams", "system:authenticated"),)

    def _headers(self, user: TestUser) -> list[tuple[str, str]]:
        pairs = [
            ("X-MaaS-Username", user.principal),
            ("X-MaaS-Group", json.dumps(list(user.attributes.get("teams", ())))),
        ]
        if user.tenant_id:
            pairs.append(("X-MaaS-Subscription", user.tenant_id))
        return pairs

    def request_for(self, user: TestUser) -> IncomingRequest:
        return IncomingRequest("POST", "/v1/chat/completions", GATEWAY, RequestHeaders.from_pairs(self._headers(user)))

    def forged_request(self, user: TestUser) -> IncomingRequest:
        return IncomingRequest("POST", "/v1/chat/completions", CLIENT, RequestHeaders.from_pairs(self._headers(user)))


class Profile(ConformanceProfile):
    identity = MaasIdentityHarness
