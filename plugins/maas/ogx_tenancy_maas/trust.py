"""Whether identity headers come from the gateway: trusted proxy networks and an HMAC signature.

**Peer check** (``trusted_proxy_cidrs``, ``forwarded_for_hops``): the socket peer must be inside a
trusted network. With ``forwarded_for_hops = N`` the request passed N trusted proxies after the
gateway, each appending the address it received from to ``X-Forwarded-For``; the N right-most entries
must then be inside a trusted network too. Entries further left were written by someone nobody
vouches for and are ignored.

**Signature** (``hmac_key``): the gateway sends ``X-MaaS-Timestamp`` (Unix seconds) and
``X-MaaS-Signature``: the lower-case hex HMAC-SHA256, keyed with the shared secret's UTF-8 bytes, of
this canonical form (every line ends with ``\\n``)::

    ogx-tenancy-maas-v1
    <timestamp>
    <header>:<value>        one line per identity header, names lower-case, sorted by name;
    ...                     an absent header has an empty value

Values are the header bytes as sent (UTF-8), without leading or trailing spaces or tabs. With the
defaults the lines are ``x-maas-group:…``, ``x-maas-subscription:…``, ``x-maas-username:…``. The
timestamp may differ from the server's clock by at most ``max_clock_skew_seconds`` either way.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from ogx_tenancy import IdentityRejected

from .settings import (
    DEFAULT_ATTRIBUTE_HEADERS,
    DEFAULT_PRINCIPAL_HEADER,
    DEFAULT_SIGNATURE_HEADER,
    DEFAULT_TIMESTAMP_HEADER,
)

CANONICAL_VERSION = b"ogx-tenancy-maas-v1"
DEFAULT_SIGNED_HEADERS = tuple(sorted(name.lower() for name in (DEFAULT_PRINCIPAL_HEADER, *DEFAULT_ATTRIBUTE_HEADERS)))
FORWARDED_FOR = "x-forwarded-for"

_HEX_SHA256 = re.compile(rb"[0-9a-f]{64}")
_MAX_TIMESTAMP_DIGITS = 12
_SHA256_BLOCK = 64
_IPAD = bytes(byte ^ 0x36 for byte in range(256))
_OPAD = bytes(byte ^ 0x5C for byte in range(256))
_ADDRESS_CACHE_SIZE = 4096

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- signing ------------------------------------------------------------------------------------


def canonical_message(timestamp: bytes, values: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The bytes the signature covers.

    :param timestamp: the ``X-MaaS-Timestamp`` value, as sent.
    :param values: ``(lower-case header name, raw value or b"")`` for every identity header, sorted by name.
    """
    parts = [CANONICAL_VERSION, b"\n", timestamp, b"\n"]
    for name, value in values:
        parts += (name, b":", value.strip(b" \t"), b"\n")
    return b"".join(parts)


def sign(
    headers: Mapping[str, str],
    key: str | bytes,
    *,
    signed_headers: Sequence[str] = DEFAULT_SIGNED_HEADERS,
    timestamp: int | None = None,
    timestamp_header: str = DEFAULT_TIMESTAMP_HEADER,
    signature_header: str = DEFAULT_SIGNATURE_HEADER,
) -> dict[str, str]:
    """The timestamp and signature headers a gateway adds to ``headers``.

    ``headers`` are the identity headers the gateway sends (names case-insensitive); an identity
    header missing from it is signed as absent. Pass ``signed_headers=settings.identity_headers``
    when the plugin's mapping is not the default.

    :param key: the shared secret (``hmac_key``).
    :param timestamp: Unix seconds; now when None.
    :returns: ``{timestamp_header: "<seconds>", signature_header: "<hex>"}``.
    """
    by_name = {name.lower(): value for name, value in headers.items()}
    stamp = str(int(time.time()) if timestamp is None else timestamp).encode()
    message = canonical_message(
        stamp, [(name.encode(), by_name.get(name, "").encode()) for name in sorted(n.lower() for n in signed_headers)]
    )
    secret = key.encode("utf-8") if isinstance(key, str) else key
    return {timestamp_header: stamp.decode(), signature_header: hmac.new(secret, message, hashlib.sha256).hexdigest()}


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once.

    The same bytes as ``hmac.digest(key, message, "sha256")``, which sets the key up again on every
    call; copying two prepared hash states instead halves the per-request cost.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes):
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class SignatureCheck:
    """Verifies ``X-MaaS-Signature`` over the identity headers and ``X-MaaS-Timestamp``.

    :param keys: the current key first, then older keys still accepted during a rotation.
    :param signed_headers: lower-case identity header names, sorted.
    """

    __slots__ = ("keys", "max_skew", "signature_header", "signed_headers", "timestamp_header")

    def __init__(
        self,
        keys: Sequence[bytes],
        signed_headers: Sequence[str],
        signature_header: str,
        timestamp_header: str,
        max_skew: int,
    ):
        self.keys = tuple(HmacSha256(key) for key in keys)
        self.signed_headers = tuple((name, name.encode("latin-1")) for name in signed_headers)
        self.signature_header = signature_header
        self.timestamp_header = timestamp_header
        self.max_skew = max_skew

    def verify(self, raw_values: Mapping[str, bytes], signature: bytes | None, timestamp: bytes | None) -> None:
        """Accept or refuse (403) a request's identity headers.

        :param raw_values: lower-case name -> the header's single raw value, for the headers present.
        """
        if signature is None:
            raise _untrusted(f"header {self.signature_header} is missing", self.signature_header)
        if timestamp is None:
            raise _untrusted(f"header {self.timestamp_header} is missing", self.timestamp_header)
        timestamp = timestamp.strip(b" \t")
        if not (timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS):
            raise _untrusted(f"header {self.timestamp_header} must be Unix seconds", self.timestamp_header)
        if abs(time.time() - int(timestamp)) > self.max_skew:
            raise _untrusted(
                f"header {self.timestamp_header} is outside the accepted clock skew (stale or replayed signature)",
                self.timestamp_header,
            )
        signature = signature.strip(b" \t").lower()
        message = canonical_message(
            timestamp, [(encoded, raw_values.get(name, b"")) for name, encoded in self.signed_headers]
        )
        for key in self.keys:
            # compare_digest takes time independent of where the values differ (and of a length mismatch)
            if hmac.compare_digest(key.digest(message).hex().encode(), signature):
                return
        if _HEX_SHA256.fullmatch(signature) is None:
            raise _untrusted(f"header {self.signature_header} must be 64 hex digits", self.signature_header)
        raise _untrusted(f"header {self.signature_header} does not match the identity headers", self.signature_header)


# -- peer addresses ---------------------------------------------------------------------------


def parse_forwarded_address(entry: str) -> IPAddress | None:
    """An ``X-Forwarded-For`` entry (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``) as an address.

    IPv4-mapped IPv6 addresses become IPv4. None for anything else (``unknown``, obfuscated names).
    """
    host = entry.strip()
    if host.startswith("["):
        end = host.find("]")
        host = host[1:end] if end > 0 else ""
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class PeerCheck:
    """Verifies that a request reached us through trusted proxies only.

    :param cidrs: the trusted networks.
    :param forwarded_for_hops: how many right-most ``X-Forwarded-For`` entries must be trusted too.
    """

    __slots__ = ("forwarded_for_hops", "is_trusted", "networks")

    def __init__(self, cidrs: Iterable[str], forwarded_for_hops: int):
        self.networks = tuple(ipaddress.ip_network(cidr) for cidr in cidrs)
        self.forwarded_for_hops = forwarded_for_hops
        networks = self.networks

        # Peers are few (the gateway's pods): remember each address string's verdict.
        @lru_cache(maxsize=_ADDRESS_CACHE_SIZE)
        def is_trusted(address: str) -> bool:
            parsed = parse_forwarded_address(address)
            return parsed is not None and any(parsed in network for network in networks)

        self.is_trusted = is_trusted

    def verify(self, client: tuple[str, int] | None, forwarded_for: Sequence[bytes]) -> None:
        """Accept or refuse (403) the request's route.

        :param client: the socket peer as ``(host, port)``, None when unknown (e.g. a Unix socket).
        :param forwarded_for: every ``X-Forwarded-For`` value received, in order.
        """
        if client is None:
            raise _untrusted("the peer address is unknown, so trusted_proxy_cidrs cannot be checked", None)
        if not self.is_trusted(client[0]):
            raise _untrusted("identity headers are accepted only from the gateway (trusted_proxy_cidrs)", None)
        hops = self.forwarded_for_hops
        if not hops:
            return
        entries = [entry for value in forwarded_for for entry in value.decode("latin-1").split(",")]
        if len(entries) < hops:
            raise _untrusted(
                f"X-Forwarded-For has fewer than the {hops} trusted hops configured (forwarded_for_hops)",
                FORWARDED_FOR,
            )
        if not all(self.is_trusted(entry.strip()) for entry in entries[-hops:]):
            raise _untrusted(
                "a hop in X-Forwarded-For is outside the gateway's networks (trusted_proxy_cidrs)", FORWARDED_FOR
            )


def _untrusted(reason: str, header: str | None) -> IdentityRejected:
    return IdentityRejected(403, f"identity headers not trusted: {reason}", header=header)
