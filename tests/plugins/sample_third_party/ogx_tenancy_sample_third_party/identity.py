"""Identity from the Acme gateway's signed headers."""

from __future__ import annotations

import hashlib
import hmac
import re

from ogx_tenancy import Identity, IdentityRejected, IncomingRequest

from .settings import AcmeSettings

USER, GROUPS, ROLES, TENANT, SIGNATURE = (
    "x-acme-user",
    "x-acme-groups",
    "x-acme-roles",
    "x-acme-tenant",
    "x-acme-signature",
)
SIGNED = (USER, GROUPS, ROLES, TENANT)
IDENTITY_HEADERS = (*SIGNED, SIGNATURE)
EVERYONE = "acme:everyone"  # every Acme user has it: never a shared team
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sign(secret: str, values: dict[str, str]) -> str:
    """The signature the gateway sends: HMAC-SHA256 over the four values joined by newlines."""
    message = "\n".join(values.get(h, "") for h in SIGNED).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _value(request: IncomingRequest, header: str, settings: AcmeSettings) -> str:
    raw = request.headers.get_all_raw(header)
    if len(raw) > 1:
        raise IdentityRejected(400, f"header {header} was sent more than once", header=header)
    if not raw:
        return ""
    return _decode(raw[0], header, settings)


def _decode(raw: bytes, header: str, settings: AcmeSettings) -> str:
    if len(raw) > settings.max_value_bytes:
        raise IdentityRejected(400, f"header {header} is too long", header=header)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise IdentityRejected(400, f"header {header} is not valid UTF-8", header=header) from None
    if _CONTROL.search(text):
        raise IdentityRejected(400, f"header {header} contains control characters", header=header)
    return text


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip() and v.strip() != EVERYONE]


def identify(request: IncomingRequest, settings: AcmeSettings) -> Identity | None:
    values = {h: _value(request, h, settings) for h in IDENTITY_HEADERS}
    if not values[USER]:
        return None
    expected = sign(settings.secret.get_secret_value(), values)
    if not hmac.compare_digest(expected, values[SIGNATURE]):
        raise IdentityRejected(401, "identity headers are not signed by the Acme gateway", header=SIGNATURE)
    attributes = {"teams": _split(values[GROUPS]), "roles": _split(values[ROLES])}
    return Identity(values[USER], {k: v for k, v in attributes.items() if v}, values[TENANT] or None)
