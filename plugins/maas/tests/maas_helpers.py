"""Building requests and settings for the maas plugin's tests: the gateway's side in a few lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from ogx_tenancy import Identity, IdentityRejected, IncomingRequest, RequestHeaders
from ogx_tenancy_maas import MaasSettings, sign
from ogx_tenancy_maas.plugin import ogx_tenancy_identity

KEY = "maas-test-key-0123456789abcdef0123456789abcdef"
GATEWAY = ("10.1.2.3", 40412)
OUTSIDER = ("192.0.2.77", 51000)
ALICE = {
    "X-MaaS-Username": "alice",
    "X-MaaS-Group": '["system:authenticated","team-a"]',
    "X-MaaS-Subscription": "gold",
}

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def make_settings(**overrides: Any) -> MaasSettings:
    """Trust the gateway's network and its signature, unless overridden."""
    return MaasSettings(**{"trusted_proxy_cidrs": ["10.0.0.0/8"], "hmac_key": KEY, **overrides})


def pairs_of(headers: Headers) -> list[tuple[str, str]]:
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


def signed(headers: Headers, settings: MaasSettings | None = None, *, timestamp: int | None = None,
           key: str = KEY) -> list[tuple[str, str]]:
    """``headers`` plus the timestamp and signature a gateway would add (duplicates: the first copy is signed)."""
    pairs = pairs_of(headers)
    first: dict[str, str] = {}
    for name, value in pairs:
        first.setdefault(name.lower(), value)
    options: dict[str, Any] = {"timestamp": timestamp}
    if settings is not None:
        options.update(
            signed_headers=settings.identity_headers,
            timestamp_header=settings.timestamp_header,
            signature_header=settings.signature_header,
        )
    return pairs + list(sign(first, key, **options).items())


def make_request(headers: Headers, client: tuple[str, int] | None = GATEWAY, *, raw: Iterable[tuple[bytes, bytes]] = ()
                 ) -> IncomingRequest:
    """A request as the host hands it to the hook; ``raw`` adds byte-exact header pairs."""
    encoded = [(name.lower().encode("latin-1"), value.encode("utf-8")) for name, value in pairs_of(headers)]
    return IncomingRequest("GET", "/v1/files", client, RequestHeaders([*encoded, *raw]))


def identify(headers: Headers, settings: MaasSettings | None = None, client: tuple[str, int] | None = GATEWAY, *,
             sign_it: bool = True, raw: Iterable[tuple[bytes, bytes]] = ()) -> Identity | None:
    """Run the plugin's identity hook; signs ``headers`` first unless ``sign_it`` is false."""
    settings = settings or make_settings()
    if sign_it and settings.hmac_key is not None:
        headers = signed(headers, settings)
    return ogx_tenancy_identity(make_request(headers, client, raw=raw), settings)


def rejected(headers: Headers, settings: MaasSettings | None = None, client: tuple[str, int] | None = GATEWAY, *,
             sign_it: bool = True, raw: Iterable[tuple[bytes, bytes]] = ()) -> IdentityRejected:
    """The rejection the hook raises (fails the test when it accepts the request)."""
    with pytest.raises(IdentityRejected) as caught:
        identify(headers, settings, client, sign_it=sign_it, raw=raw)
    return caught.value
