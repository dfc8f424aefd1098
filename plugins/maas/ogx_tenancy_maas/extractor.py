"""From an incoming request to an Identity: the order of the checks, compiled once per settings.

1. No identity header at all -> None (the host answers 401, or serves a public route such as /v1/health).
2. Peer check (when ``trusted_proxy_cidrs`` is set) -> 403.
3. Any identity, signature or timestamp header received more than once -> 400.
4. Signature check (when ``hmac_key`` is set) -> 403; raw CR/LF/NUL are refused (400) before it.
5. Values: principal (missing -> 401, empty or malformed -> 400), attributes, tenant -> 400 on any fault.

Every configured check must pass; a request is identified completely or refused, never in part.
"""

from __future__ import annotations

import re

from ogx_tenancy import Identity, IdentityRejected, IncomingRequest

from .settings import MaasSettings
from .trust import FORWARDED_FOR, PeerCheck, SignatureCheck
from .values import ValueParser, has_raw_control

# OGX's tenant id rule; non-canonical ids are refused rather than lower-cased, so two spellings of
# one tenant can never be merged silently.
CANONICAL_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,127}")


class IdentityExtractor:
    """Everything derived from ``MaasSettings`` that a request needs, computed once."""

    def __init__(self, settings: MaasSettings):
        self.principal_header = settings.principal_header
        self.principal_key = settings.principal_header.lower()
        # (header as configured, lower-case name, category)
        self.attribute_headers = tuple(
            (header, header.lower(), category) for header, category in settings.attribute_headers.items()
        )
        self.tenant_header = settings.tenant_header
        self.tenant_key = settings.tenant_header.lower() if settings.tenant_header else None
        self.tenant_category = settings.tenant_from_attribute
        self.identity_keys = settings.identity_headers
        self.static_attributes = {category: tuple(values) for category, values in settings.static_attributes.items()}
        self.pseudo_groups = frozenset(settings.pseudo_groups)
        self.parser = ValueParser(settings.max_value_length, settings.max_values)
        self.signature_key = settings.signature_header.lower()
        self.timestamp_key = settings.timestamp_header.lower()
        self.single_keys = (*self.identity_keys, self.signature_key, self.timestamp_key)
        self.header_names = {
            settings.principal_header.lower(): settings.principal_header,
            **{key: header for header, key, _ in self.attribute_headers},
            self.signature_key: settings.signature_header,
            self.timestamp_key: settings.timestamp_header,
        }
        if settings.tenant_header:
            self.header_names[settings.tenant_header.lower()] = settings.tenant_header
        self.peer_check = (
            PeerCheck(settings.trusted_proxy_cidrs, settings.forwarded_for_hops)
            if settings.trusted_proxy_cidrs
            else None
        )
        self.signature_check = (
            SignatureCheck(
                [key.get_secret_value().encode("utf-8") for key in (settings.hmac_key, *settings.hmac_previous_keys)],
                self.identity_keys,
                settings.signature_header,
                settings.timestamp_header,
                settings.max_clock_skew_seconds,
            )
            if settings.hmac_key is not None
            else None
        )

    def identify(self, request: IncomingRequest) -> Identity | None:
        """The request's identity, None when it carries no identity header, or ``IdentityRejected``."""
        get_all_raw = request.headers.get_all_raw
        raw: dict[str, bytes] = {}
        repeated = None
        for key in self.single_keys:
            values = get_all_raw(key)
            if values:
                raw[key] = values[0]
                if len(values) > 1 and repeated is None:
                    repeated = key
        if raw.keys().isdisjoint(self.identity_keys):
            return None
        if self.peer_check is not None:
            self.peer_check.verify(request.client, get_all_raw(FORWARDED_FOR))
        if repeated is not None:
            header = self.header_names[repeated]
            raise IdentityRejected(400, f"header {header} was sent more than once", header=header)
        if self.signature_check is not None:
            for key in self.identity_keys:
                value = raw.get(key)
                if value is not None and has_raw_control(value):
                    header = self.header_names[key]
                    raise IdentityRejected(400, f"header {header} contains a control character", header=header)
            self.signature_check.verify(raw, raw.get(self.signature_key), raw.get(self.timestamp_key))
        return self._identity(raw)

    def _identity(self, raw: dict[str, bytes]) -> Identity:
        principal_raw = raw.get(self.principal_key)
        if principal_raw is None:
            raise IdentityRejected(
                401, f"identity headers were sent without {self.principal_header}", header=self.principal_header
            )
        parser = self.parser
        principal = parser.single(principal_raw, self.principal_header)
        attributes: dict[str, list[str]] = {}
        tenant_values: list[str] | None = None  # the values of the tenant_from_attribute header
        tenant_source: str | None = None
        for header, key, category in self.attribute_headers:
            value = raw.get(key)
            if value is None:
                continue
            values = parser.many(value, header)
            if category == self.tenant_category:
                tenant_values = values
                tenant_source = header
            if self.pseudo_groups:
                values = [v for v in values if v not in self.pseudo_groups]
            if values:
                attributes.setdefault(category, []).extend(values)
        for category, values in self.static_attributes.items():
            attributes.setdefault(category, []).extend(values)
        tenant_id = None
        if self.tenant_key is not None:
            tenant_raw = raw.get(self.tenant_key)
            if tenant_raw is not None:
                tenant_id = _canonical_tenant(parser.single(tenant_raw, self.tenant_header), self.tenant_header)
        elif tenant_values:
            if len(tenant_values) > 1:
                raise IdentityRejected(
                    400, f"header {tenant_source} must hold exactly one value to name the tenant", header=tenant_source
                )
            tenant_id = _canonical_tenant(tenant_values[0], tenant_source)
        return Identity(principal=principal, attributes=attributes, tenant_id=tenant_id)


def _canonical_tenant(value: str, header: str | None) -> str:
    if CANONICAL_TENANT.fullmatch(value) is None:
        raise IdentityRejected(
            400,
            f"header {header} is not a canonical tenant id (lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit, at most 128 characters)",
            header=header,
        )
    return value
