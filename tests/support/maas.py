"""The MaaS gateway's side, for tests against a real server: set the caller's identity headers and sign them."""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import httpx
import openai

from ogx_tenancy_maas import sign

HMAC_KEY = "integration-hmac-key-0123456789abcdef0123456789"
IDENTITY_HEADERS = ("X-MaaS-Username", "X-MaaS-Group", "X-MaaS-Subscription")
SIGNATURE_HEADERS = ("X-MaaS-Timestamp", "X-MaaS-Signature")


@dataclass(frozen=True)
class MaasUser:
    """A caller as the gateway authenticated it."""

    username: str
    groups: Sequence[str]
    subscription: str

    def headers(self) -> dict[str, str]:
        """The identity headers the gateway injects (MaaS renders groups as a JSON array string)."""
        return {
            "X-MaaS-Username": self.username,
            "X-MaaS-Group": json.dumps(list(self.groups)),
            "X-MaaS-Subscription": self.subscription,
        }

    def signed_headers(self, key: str = HMAC_KEY, *, age_seconds: int = 0) -> dict[str, str]:
        """Identity headers plus a timestamp and signature made ``age_seconds`` ago."""
        headers = self.headers()
        return headers | sign(headers, key, timestamp=int(time.time()) - age_seconds)


class MaasGateway(httpx.Auth):
    """Stands in for the gateway on every request a client sends: drops identity and signature headers
    the client set itself, then sets the authenticated user's, signed with ``key`` (unsigned when None)."""

    def __init__(self, user: MaasUser, key: str | None = HMAC_KEY):
        self.user = user
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for name in (*IDENTITY_HEADERS, *SIGNATURE_HEADERS):
            request.headers.pop(name, None)
        request.headers.update(self.user.signed_headers(self.key) if self.key else self.user.headers())
        yield request


def http_client(base_url: str, user: MaasUser, key: str | None = HMAC_KEY) -> httpx.Client:
    """An httpx client whose requests pass through the stand-in gateway as ``user``."""
    return httpx.Client(base_url=base_url, auth=MaasGateway(user, key), timeout=60)


def openai_client(base_url: str, user: MaasUser, key: str | None = HMAC_KEY) -> openai.OpenAI:
    """The tenant's OpenAI client, its requests passing through the stand-in gateway as ``user``."""
    return openai.OpenAI(
        base_url=f"{base_url}/v1", api_key="unused", http_client=httpx.Client(auth=MaasGateway(user, key), timeout=60)
    )
