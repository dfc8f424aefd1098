"""Arbitrary header bytes always end in a valid Identity, None, or a clean IdentityRejected.

The hook is called directly, not through the host: the host turns any other exception into a 401,
which would hide a crash here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from maas_helpers import GATEWAY, KEY, OUTSIDER, make_settings, signed

from ogx_tenancy import Identity, IdentityRejected, IncomingRequest, RequestHeaders
from ogx_tenancy_maas import canonical_message
from ogx_tenancy_maas.extractor import CANONICAL_TENANT
from ogx_tenancy_maas.plugin import ogx_tenancy_identity
from ogx_tenancy_maas.settings import DEFAULT_PSEUDO_GROUPS

MARKER = "Zq9marker"  # planted in values; a rejection must never repeat it
SETTINGS = make_settings(tenant_header="X-Tenant", max_value_length=24, max_values=6)
SIGNED = SETTINGS.identity_headers
NAMES = [*SIGNED, "x-maas-signature", "x-maas-timestamp", "x-forwarded-for", "authorization", "x-other"]

atom = st.one_of(
    st.sampled_from(["team-a", "Team-A", "acme", "gold", "system:authenticated", "system:serviceaccounts", MARKER]),
    st.sampled_from([f"{MARKER},x", "a" * 25, "é", "\u202e", " ", "", "[", '"']),
    st.text(max_size=12),
)
structured = st.one_of(
    st.lists(atom, max_size=8).map(json.dumps),
    st.lists(atom, max_size=8).map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.lists(atom, max_size=8).map(lambda v: "[" + " ".join(v) + "]"),
    st.lists(atom, max_size=8).map(", ".join),
    atom.map(json.dumps),
    atom,
).map(lambda s: s.encode("utf-8", "surrogatepass"))
value_bytes = st.one_of(structured, st.binary(max_size=60), structured.map(lambda b: b[: len(b) // 2]))
valid_values = st.lists(st.sampled_from(["team-a", "team-b", "gold", "system:authenticated", MARKER]), max_size=4)
group = st.one_of(valid_values.map(json.dumps).map(str.encode), valid_values.map(",".join).map(str.encode), value_bytes)
header_name = st.sampled_from(NAMES).flatmap(lambda n: st.sampled_from([n, n.upper(), n.title()]))
principal = st.sampled_from([b"alice", b"bob", b" carol ", MARKER.encode()]) | value_bytes
tenant = st.sampled_from([b"acme", b"acme-1", b"Acme", MARKER.encode()]) | value_bytes


@st.composite
def requests(draw: st.DrawFn) -> IncomingRequest:
    pairs: list[tuple[bytes, bytes]] = []
    # most requests look like the gateway's, so that parsing, not only trust, is exercised
    for name, strategy, probability in (
        (b"x-maas-username", principal, 9),
        (b"x-maas-group", group, 8),
        (b"x-maas-subscription", value_bytes, 5),
        (b"x-tenant", tenant, 5),
    ):
        if draw(st.integers(0, 9)) < probability:
            pairs.append((name, draw(strategy)))
    if draw(st.integers(0, 9)) < 3:  # any header again, in any case: duplicates, stray signatures
        extra = draw(st.lists(st.tuples(header_name, value_bytes), max_size=2))
        pairs += [(name.encode(), value) for name, value in extra]
    if draw(st.integers(0, 9)) < 8:  # usually signed by the gateway
        first: dict[str, bytes] = {}
        for name, value in pairs:
            first.setdefault(name.decode("latin-1").lower(), value)
        stamp = str(int(time.time()) + draw(st.sampled_from([0] * 8 + [-3600, 3600]))).encode()
        message = canonical_message(stamp, [(name.encode(), first.get(name, b"")) for name in SIGNED])
        signature = hmac.new(KEY.encode(), message, hashlib.sha256).hexdigest().encode()
        if draw(st.integers(0, 19)) == 0:
            signature = signature[::-1]
        pairs += [(b"x-maas-timestamp", stamp), (b"x-maas-signature", signature)]
    client = draw(st.sampled_from([GATEWAY] * 12 + [("::ffff:10.9.9.9", 1), OUTSIDER, None, ("garbage", 1)]))
    return IncomingRequest("POST", "/v1/chat/completions", client, RequestHeaders(draw(st.permutations(pairs))))


def _clean(value: str) -> bool:
    return bool(value) and value == value.strip() and all(ch >= " " and ch != "\x7f" for ch in value)


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_arbitrary_headers_end_in_an_identity_or_a_clean_rejection(request):
    try:
        result = ogx_tenancy_identity(request, SETTINGS)
    except IdentityRejected as rejection:
        event(f"rejected {rejection.status}")
        assert rejection.status in (400, 401, 403)
        assert rejection.header is None or isinstance(rejection.header, str)
        assert MARKER not in json.dumps(rejection.to_openai_error())
        return
    event("no identity" if result is None else "identity")
    if result is None:
        return
    assert isinstance(result, Identity)
    assert _clean(result.principal) and len(result.principal) <= SETTINGS.max_value_length
    assert set(result.attributes) <= {"teams", "namespaces"}
    for values in result.attributes.values():
        assert 0 < len(values) <= SETTINGS.max_values
        assert all(_clean(v) and len(v) <= SETTINGS.max_value_length for v in values)
        assert not set(values) & set(DEFAULT_PSEUDO_GROUPS)
    assert result.tenant_id is None or CANONICAL_TENANT.fullmatch(result.tenant_id)
    # only a verified request is ever believed
    assert request.client is not None and request.client[0] in ("10.1.2.3", "::ffff:10.9.9.9")
    assert request.headers.get_all("x-maas-signature")


safe_name = st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd", "Lo"), whitelist_characters="-_.@:"),
                    min_size=1, max_size=24)
encodings = st.sampled_from(["json", "tostr", "commas"])


@settings(max_examples=1000, deadline=None)
@given(
    principal=safe_name,
    groups=st.lists(safe_name, max_size=6),
    subscription=safe_name,
    tenant=st.from_regex(CANONICAL_TENANT, fullmatch=True).filter(lambda t: len(t) <= 24),
    encoding=encodings,
)
def test_every_valid_signed_request_is_identified_exactly(principal, groups, subscription, tenant, encoding):
    rendered = {
        "json": json.dumps(groups, ensure_ascii=False),
        "tostr": "[" + " ".join(groups) + "]",
        "commas": ",".join(groups),
    }[encoding]
    headers = {"X-MaaS-Username": principal, "X-MaaS-Group": rendered, "X-MaaS-Subscription": subscription,
               "X-Tenant": tenant}
    pairs = [(name.lower().encode(), value.encode()) for name, value in signed(headers, SETTINGS)]
    request = IncomingRequest("GET", "/v1/models", GATEWAY, RequestHeaders(pairs))
    # pseudo-groups are dropped from every header attribute
    teams = [g for g in dict.fromkeys(groups) if g not in DEFAULT_PSEUDO_GROUPS]
    namespaces = [subscription] if subscription not in DEFAULT_PSEUDO_GROUPS else []
    expected = Identity(principal, {"teams": teams, "namespaces": namespaces}, tenant_id=tenant)
    assert ogx_tenancy_identity(request, SETTINGS) == expected
