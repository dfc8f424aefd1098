from __future__ import annotations

import itertools

import pytest

from ogx_tenancy.merge import merge_headers, merge_identities
from ogx_tenancy.types import HeaderConflict, Identity, IdentityRejected


def test_single_principal_claim_with_attribute_union_in_order():
    merged = merge_identities(
        [
            ("b_groups", Identity(None, {"teams": ["x", "y"], "roles": ["r"]})),
            ("a_gateway", Identity("alice", {"teams": ["y", "z"]}, "t1")),
        ]
    )
    assert merged == Identity("alice", {"teams": ("y", "z", "x"), "roles": ("r",)}, "t1")


def test_merge_is_independent_of_plugin_order():
    contributions = [
        ("gw", Identity("alice", {"teams": ["a", "b"]})),
        ("extra", Identity(None, {"teams": ["c", "a"], "roles": ["admin"]})),
        ("tenant", Identity(None, {}, "t9")),
    ]
    results = {merge_identities(list(order)) for order in itertools.permutations(contributions)}
    assert len(results) == 1


def test_two_principal_claims_are_rejected():
    with pytest.raises(IdentityRejected) as info:
        merge_identities([("a", Identity("alice")), ("b", Identity("bob"))])
    assert info.value.status == 401


def test_disagreeing_tenants_are_rejected():
    with pytest.raises(IdentityRejected):
        merge_identities([("a", Identity("alice", tenant_id="t1")), ("b", Identity(None, tenant_id="t2"))])


def test_partial_identities_alone_are_no_identity():
    assert merge_identities([("a", Identity(None, {"teams": ["x"]}))]) is None
    assert merge_identities([]) is None


def test_headers_union_lower_cased():
    assert merge_headers([("p1", {"X-A": "1"}), ("p2", {"x-b": "2", "x-a": "1"})]) == {"x-a": "1", "x-b": "2"}


def test_header_conflict_names_both_plugins_whatever_the_order():
    for order in (
        [("zeta", {"X-Id": "1"}), ("alpha", {"x-id": "2"})],
        [("alpha", {"x-id": "2"}), ("zeta", {"X-Id": "1"})],
    ):
        with pytest.raises(HeaderConflict) as info:
            merge_headers(order)
        assert info.value.plugins == ("alpha", "zeta")
        assert "alpha" in str(info.value) and "zeta" in str(info.value)


def test_non_string_header_values_are_refused():
    with pytest.raises(TypeError, match="p1"):
        merge_headers([("p1", {"x-a": 1})])  # type: ignore[dict-item]
