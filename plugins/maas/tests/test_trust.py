"""Trust: the peer check (CIDRs, X-Forwarded-For hops) and the HMAC signature (ogx_tenancy_maas.trust)."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from maas_helpers import ALICE, GATEWAY, KEY, OUTSIDER, identify, make_settings, rejected, signed

from ogx_tenancy import Identity
from ogx_tenancy_maas import DEFAULT_SIGNED_HEADERS, canonical_message, sign
from ogx_tenancy_maas.trust import HmacSha256, parse_forwarded_address

CIDR_ONLY = {"hmac_key": None}
HMAC_ONLY = {"trusted_proxy_cidrs": []}


# -- peer check -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidrs", "peer"),
    [
        (["10.0.0.0/8"], "10.255.0.1"),
        (["192.0.2.0/24", "10.0.0.0/8"], "10.1.2.3"),
        (["10.0.0.0/8"], "::ffff:10.1.2.3"),  # IPv4-mapped, from a dual-stack listener
        (["::1/128"], "::1"),
        (["fd00::/8"], "fd12:3456::1"),
    ],
)
def test_peers_inside_the_trusted_networks_are_believed(cidrs, peer):
    identity = identify(ALICE, make_settings(trusted_proxy_cidrs=cidrs, **{"hmac_key": None}), (peer, 1))
    assert identity is not None and identity.principal == "alice"


@pytest.mark.parametrize("peer", ["11.0.0.1", "192.0.2.77", "::1", "::ffff:192.0.2.1", "testclient", ""])
def test_peers_outside_the_trusted_networks_are_refused(peer):
    rejection = rejected(ALICE, make_settings(**CIDR_ONLY), (peer, 1))
    assert rejection.status == 403
    assert "trusted_proxy_cidrs" in rejection.reason


def test_unknown_peer_is_refused():
    rejection = rejected(ALICE, make_settings(**CIDR_ONLY), None)
    assert rejection.status == 403 and "peer address is unknown" in rejection.reason


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        ("10.0.0.7", "10.0.0.7"),
        (" 10.0.0.7 ", "10.0.0.7"),
        ("10.0.0.7:443", "10.0.0.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[::ffff:10.0.0.7]:80", "10.0.0.7"),
        ("unknown", None),
        ("_hidden", None),
        ("[2001:db8::1", None),
        ("", None),
    ],
)
def test_forwarded_for_entries(entry, address):
    parsed = parse_forwarded_address(entry)
    assert (str(parsed) if parsed is not None else None) == address


HOPS = {"forwarded_for_hops": 1, "hmac_key": None}


def test_forwarded_for_hops_checks_the_gateway_behind_a_sidecar():
    settings = make_settings(trusted_proxy_cidrs=["127.0.0.1/32", "10.0.0.0/8"], **HOPS)
    sidecar = ("127.0.0.1", 1)
    # the client's own X-Forwarded-For entries on the left are ignored
    good = [*ALICE.items(), ("X-Forwarded-For", "203.0.113.9, 10.0.0.7")]
    assert identify(good, settings, sidecar) is not None
    # another pod talking to the sidecar directly: the sidecar appends that pod's address
    bad = [*ALICE.items(), ("X-Forwarded-For", "10.0.0.7, 203.0.113.9")]
    rejection = rejected(bad, settings, sidecar)
    assert (rejection.status, rejection.header) == (403, "x-forwarded-for")
    missing = rejected(ALICE, settings, sidecar)
    assert missing.status == 403 and "fewer than" in missing.reason
    garbage = rejected([*ALICE.items(), ("X-Forwarded-For", "unknown")], settings, sidecar)
    assert garbage.status == 403


def test_forwarded_for_hops_never_trusts_the_socket_peer_blindly():
    settings = make_settings(trusted_proxy_cidrs=["10.0.0.0/8"], **HOPS)
    forged = [*ALICE.items(), ("X-Forwarded-For", "10.0.0.7")]
    assert rejected(forged, settings, OUTSIDER).status == 403


def test_forwarded_for_lines_are_read_in_order_and_hops_count():
    settings = make_settings(trusted_proxy_cidrs=["10.0.0.0/8"], forwarded_for_hops=2, hmac_key=None)
    two_lines = [*ALICE.items(), ("X-Forwarded-For", "203.0.113.9, 10.0.0.8"), ("X-Forwarded-For", "10.0.0.9:80")]
    assert identify(two_lines, settings) is not None
    one_trusted = [*ALICE.items(), ("X-Forwarded-For", "10.0.0.8, 203.0.113.9")]
    assert rejected(one_trusted, settings).status == 403
    too_few = [*ALICE.items(), ("X-Forwarded-For", "10.0.0.8")]
    assert "fewer than the 2" in rejected(too_few, settings).reason


# -- signature ------------------------------------------------------------------------------------


def test_a_correctly_signed_request_passes():
    assert identify(ALICE, make_settings(**HMAC_ONLY), OUTSIDER) == Identity(
        "alice", {"teams": ["team-a"], "namespaces": ["gold"]}
    )


@pytest.mark.parametrize(
    "tamper",
    [
        {"X-MaaS-Username": "mallory"},
        {"X-MaaS-Group": '["system:authenticated","team-a","admins"]'},
        {"X-MaaS-Subscription": "platinum"},
    ],
)
def test_a_tampered_header_is_refused(tamper):
    pairs = [(name, tamper.get(name, value)) for name, value in signed(ALICE)]
    rejection = rejected(pairs, sign_it=False)
    assert (rejection.status, rejection.header) == (403, "X-MaaS-Signature")
    assert "does not match" in rejection.reason


def test_removing_or_adding_a_signed_header_is_refused():
    pairs = signed(ALICE)
    removed = [(n, v) for n, v in pairs if n != "X-MaaS-Subscription"]
    assert rejected(removed, sign_it=False).status == 403
    without_group = {k: v for k, v in ALICE.items() if k != "X-MaaS-Group"}
    added = [*signed(without_group), ("X-MaaS-Group", '["admins"]')]
    assert rejected(added, sign_it=False).status == 403


def test_surrounding_whitespace_does_not_change_the_signature():
    pairs = [(n, f"  {v}\t") if n.startswith("X-MaaS-") else (n, v) for n, v in signed(ALICE)]
    assert identify(pairs, sign_it=False) is not None


@pytest.mark.parametrize("age", [-61, 61, 3600, -3600])
def test_a_stale_or_future_signature_is_refused(age):
    pairs = signed(ALICE, timestamp=int(time.time()) - age)
    rejection = rejected(pairs, sign_it=False)
    assert (rejection.status, rejection.header) == (403, "X-MaaS-Timestamp")
    assert "clock skew" in rejection.reason


def test_signatures_inside_the_skew_pass_and_the_skew_is_configurable():
    assert identify(signed(ALICE, timestamp=int(time.time()) - 50), sign_it=False) is not None
    settings = make_settings(max_clock_skew_seconds=600)
    assert identify(signed(ALICE, timestamp=int(time.time()) - 500), settings, sign_it=False) is not None


@pytest.mark.parametrize(
    ("drop", "header"), [("X-MaaS-Signature", "X-MaaS-Signature"), ("X-MaaS-Timestamp", "X-MaaS-Timestamp")]
)
def test_missing_signature_headers_are_refused(drop, header):
    pairs = [(n, v) for n, v in signed(ALICE) if n != drop]
    rejection = rejected(pairs, sign_it=False)
    assert (rejection.status, rejection.header) == (403, header) and "missing" in rejection.reason


@pytest.mark.parametrize("timestamp", ["abc", "-5", "1e9", "17000000000000", "", "0x10"])
def test_malformed_timestamps_are_refused(timestamp):
    pairs = [(n, timestamp if n == "X-MaaS-Timestamp" else v) for n, v in signed(ALICE)]
    rejection = rejected(pairs, sign_it=False)
    assert (rejection.status, rejection.header) == (403, "X-MaaS-Timestamp")


@pytest.mark.parametrize("signature", ["xyz", "0" * 63, "g" * 64, ""])
def test_malformed_signatures_are_refused(signature):
    pairs = [(n, signature if n == "X-MaaS-Signature" else v) for n, v in signed(ALICE)]
    rejection = rejected(pairs, sign_it=False)
    assert (rejection.status, rejection.header) == (403, "X-MaaS-Signature")
    assert "64 hex digits" in rejection.reason


def test_upper_case_hex_is_accepted():
    pairs = [(n, v.upper() if n == "X-MaaS-Signature" else v) for n, v in signed(ALICE)]
    assert identify(pairs, sign_it=False) is not None


def test_a_signature_made_with_another_key_is_refused_and_previous_keys_rotate():
    other = "another-key-" + "x" * 40
    assert rejected(signed(ALICE, key=other), sign_it=False).status == 403
    rotating = make_settings(hmac_previous_keys=[other])
    assert identify(signed(ALICE, key=other), rotating, sign_it=False) is not None
    assert identify(signed(ALICE, key=KEY), rotating, sign_it=False) is not None


def test_raw_line_breaks_are_refused_before_the_signature():
    # a CR/LF inside a value could otherwise forge extra lines of the canonical form
    rejection = rejected({"X-MaaS-Username": "alice"}, raw=[(b"x-maas-group", b"a\nx-maas-username:mallory")])
    assert (rejection.status, rejection.header) == (400, "X-MaaS-Group")


def test_both_checks_must_pass_when_both_are_configured():
    both = make_settings()
    assert rejected(ALICE, both, OUTSIDER).status == 403  # signed, from outside
    assert rejected(ALICE, both, GATEWAY, sign_it=False).status == 403  # inside, unsigned
    assert identify(ALICE, both, GATEWAY) is not None


def test_only_a_signature_allows_any_peer():
    assert identify(ALICE, make_settings(**HMAC_ONLY), None) is not None
    assert rejected(ALICE, make_settings(**HMAC_ONLY), None, sign_it=False).status == 403


def test_unverified_mode_believes_anyone():
    settings = make_settings(trusted_proxy_cidrs=[], hmac_key=None, allow_unverified=True)
    assert identify(ALICE, settings, OUTSIDER) is not None


# -- the documented canonical form and the helpers ------------------------------------------------


def test_sign_follows_the_documented_canonical_form():
    timestamp = 1767225600
    documented = (
        "ogx-tenancy-maas-v1\n"
        f"{timestamp}\n"
        'x-maas-group:["system:authenticated","team-a"]\n'
        "x-maas-subscription:gold\n"
        "x-maas-username:alice\n"
    ).encode()
    expected = hmac.new(KEY.encode(), documented, hashlib.sha256).hexdigest()
    assert sign(ALICE, KEY, timestamp=timestamp) == {"X-MaaS-Timestamp": str(timestamp), "X-MaaS-Signature": expected}
    assert DEFAULT_SIGNED_HEADERS == ("x-maas-group", "x-maas-subscription", "x-maas-username")


def test_absent_headers_are_signed_empty():
    message = canonical_message(b"5", [(b"x-maas-group", b""), (b"x-maas-username", b"bob")])
    assert message == b"ogx-tenancy-maas-v1\n5\nx-maas-group:\nx-maas-username:bob\n"
    headers = {"X-MaaS-Username": "bob"}
    expected = hmac.new(KEY.encode(), b"ogx-tenancy-maas-v1\n5\nx-maas-group:\nx-maas-subscription:\n"
                        b"x-maas-username:bob\n", hashlib.sha256).hexdigest()
    assert sign(headers, KEY, timestamp=5)["X-MaaS-Signature"] == expected


def test_sign_uses_a_custom_mapping():
    settings = make_settings(
        principal_header="X-User",
        attribute_headers={"X-Teams": "teams"},
        tenant_header="X-Tenant",
        signature_header="X-Sig",
        timestamp_header="X-Time",
    )
    assert settings.identity_headers == ("x-teams", "x-tenant", "x-user")
    headers = {"X-User": "carol", "X-Teams": "ops", "X-Tenant": "acme"}
    pairs = signed(headers, settings)
    assert {name for name, _ in pairs} >= {"X-Sig", "X-Time"}
    assert identify(pairs, settings, sign_it=False) == Identity("carol", {"teams": ["ops"]}, tenant_id="acme")


@settings(max_examples=300, deadline=None)
@given(key=st.binary(min_size=32, max_size=200), message=st.binary(max_size=300))
def test_hmac_with_prepared_pads_equals_the_standard_library(key, message):
    assert HmacSha256(key).digest(message) == hmac.digest(key, message, "sha256")
