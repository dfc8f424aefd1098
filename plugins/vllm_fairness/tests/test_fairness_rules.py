"""The fairness id and objective chosen for a caller: every selection rule, pseudo-groups, opaque
ids, the cardinality guard, header-name modes, objective mapping and calls made for no user."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import structlog
from fairness_helpers import person, rules
from hypothesis import given
from hypothesis import strategies as st

from ogx_tenancy_vllm_fairness.fairness import (
    GIE_FAIRNESS_ID,
    GIE_OBJECTIVE,
    LLMD_FAIRNESS_ID,
    LLMD_OBJECTIVE,
    PSEUDO_GROUPS,
    CardinalityGuard,
    opaque_id,
)

TEAMS = ["system:authenticated", "zeta", "alpha", "mid"]
KEY = "0123456789abcdef-fairness-key"


# -- value selection from an attribute category ----------------------------------------------------


def test_first_takes_the_first_value_that_is_not_a_pseudo_group():
    assert rules(sources=[{"attribute": "teams", "select": "first"}]).fairness_id(person(teams=TEAMS)) == "zeta"


def test_lowest_takes_the_lowest_in_sort_order():
    assert rules(sources=[{"attribute": "teams", "select": "lowest"}]).fairness_id(person(teams=TEAMS)) == "alpha"


@given(st.permutations(["g-3", "g-1", "g-2", "system:authenticated"]))
def test_lowest_does_not_depend_on_the_order_the_gateway_sent(teams):
    assert rules(sources=[{"attribute": "teams", "select": "lowest"}]).fairness_id(person(teams=teams)) == "g-1"


def test_precedence_takes_the_first_listed_value_the_caller_has():
    chosen = rules(sources=[{"attribute": "teams", "select": "precedence", "precedence": ["gold", "mid", "alpha"]}])
    assert chosen.fairness_id(person(teams=TEAMS)) == "mid"


def test_precedence_with_no_listed_value_falls_through_to_the_next_source():
    chosen = rules(sources=[{"attribute": "teams", "select": "precedence", "precedence": ["gold"]}, "principal"])
    assert chosen.fairness_id(person(principal="bob", teams=TEAMS)) == "bob"


def test_joined_sorts_and_joins_every_value_without_pseudo_groups():
    chosen = rules(sources=[{"attribute": "teams", "select": "joined", "separator": ","}])
    assert chosen.fairness_id(person(teams=TEAMS)) == "alpha,mid,zeta"
    assert chosen.fairness_id(person(teams=["mid", "zeta", "alpha"])) == "alpha,mid,zeta"


def test_joined_uses_plus_by_default():
    assert rules(sources=[{"attribute": "teams", "select": "joined"}]).fairness_id(person(teams=["b", "a"])) == "a+b"


# -- pseudo-groups and excluded values -------------------------------------------------------------


@pytest.mark.parametrize("select", ["first", "lowest", "joined"])
def test_a_caller_with_only_pseudo_groups_gets_the_fallback(select):
    chosen = rules(sources=[{"attribute": "teams", "select": select}], fallback_id="shared")
    pseudo = ["system:authenticated", "system:authenticated:oauth", "system:unauthenticated", "system:serviceaccounts"]
    assert chosen.fairness_id(person(teams=pseudo)) == "shared"


def test_pseudo_groups_are_never_chosen_even_when_listed_in_precedence():
    chosen = rules(sources=[{"attribute": "teams", "select": "precedence",
                             "precedence": ["system:authenticated", "research"]}])
    assert chosen.fairness_id(person(teams=["system:authenticated", "research"])) == "research"
    assert chosen.fairness_id(person(teams=["system:authenticated"])) is None


@given(st.lists(st.sampled_from(["system:authenticated", "system:authenticated:oauth", "system:unauthenticated",
                                 "system:serviceaccounts", "t1", "t2", "t3"]), max_size=6),
       st.sampled_from(["first", "lowest", "joined"]))
def test_no_selection_rule_ever_returns_a_pseudo_group(teams, select):
    chosen = rules(sources=[{"attribute": "teams", "select": select}]).fairness_id(person(teams=teams))
    assert chosen is None or not any(part in chosen.split("+") for part in
                                     ["system:authenticated", "system:authenticated:oauth",
                                      "system:unauthenticated", "system:serviceaccounts"])
    assert chosen is not None or not {"t1", "t2", "t3"}.intersection(teams)


def test_excluded_values_are_glob_patterns_added_to_the_pseudo_groups():
    chosen = rules(sources=[{"attribute": "teams"}], excluded_values=["all-*", "everyone"])
    assert chosen.fairness_id(person(teams=["all-staff", "everyone", "system:authenticated", "ml"])) == "ml"
    assert "system:authenticated" in PSEUDO_GROUPS


# -- tenant, principal, ordered sources and the fallback -------------------------------------------


def test_the_default_source_is_the_tenant():
    assert rules().fairness_id(person(tenant="acme", teams=["ml"])) == "acme"


def test_principal_source():
    assert rules(sources=["principal"]).fairness_id(person(principal="carol")) == "carol"


def test_sources_are_tried_in_order():
    chosen = rules(sources=[{"attribute": "teams"}, "tenant", "principal"])
    assert chosen.fairness_id(person(tenant="acme", teams=["ml"])) == "ml"
    assert chosen.fairness_id(person(tenant="acme")) == "acme"
    assert chosen.fairness_id(person(principal="dave", tenant=None)) == "dave"


def test_fallback_when_no_source_matches_and_nothing_without_one():
    assert rules(sources=["tenant"], fallback_id="shared").fairness_id(person(tenant=None)) == "shared"
    assert rules(sources=["tenant"]).fairness_id(person(tenant=None)) is None
    assert rules(sources=["tenant"]).headers(person(tenant=None)) == {}


def test_sources_may_be_empty_when_a_fallback_is_set():
    assert rules(sources=[], fallback_id="everyone").fairness_id(person()) == "everyone"


def test_values_unsafe_in_a_header_are_skipped_without_opaque_ids():
    chosen = rules(sources=[{"attribute": "teams"}, "principal"])
    assert chosen.fairness_id(person(principal="erin", teams=["data team", "caf\u00e9", "x" * 129])) == "erin"


def test_a_joined_id_too_long_for_a_header_falls_through():
    chosen = rules(sources=[{"attribute": "teams", "select": "joined"}, "tenant"])
    assert chosen.fairness_id(person(tenant="acme", teams=[f"team-{i:03d}" for i in range(20)])) == "acme"


# -- opaque ids ------------------------------------------------------------------------------------


def test_opaque_ids_are_the_truncated_keyed_hmac_of_the_id():
    chosen = rules(sources=["tenant"], opaque_ids={"key": KEY, "length": 20})
    expected = hmac.new(KEY.encode(), b"acme", hashlib.sha256).hexdigest()[:20]
    assert chosen.fairness_id(person(tenant="acme")) == expected
    assert "acme" not in chosen.headers(person(tenant="acme"))[GIE_FAIRNESS_ID]


def test_opaque_ids_are_stable_and_differ_per_key_and_per_tenant():
    first = rules(sources=["tenant"], opaque_ids={"key": KEY})
    again = rules(sources=["tenant"], opaque_ids={"key": KEY})
    other_key = rules(sources=["tenant"], opaque_ids={"key": KEY + "-rotated"})
    assert first.fairness_id(person(tenant="acme")) == again.fairness_id(person(tenant="acme"))
    assert len(first.fairness_id(person(tenant="acme"))) == 16
    assert first.fairness_id(person(tenant="acme")) != other_key.fairness_id(person(tenant="acme"))
    assert first.fairness_id(person(tenant="acme")) != first.fairness_id(person(tenant="globex"))


def test_opaque_ids_make_any_name_sendable():
    chosen = rules(sources=[{"attribute": "teams"}], opaque_ids={"key": KEY})
    assert chosen.fairness_id(person(teams=["caf\u00e9 team"])) == opaque_id("caf\u00e9 team", KEY.encode(), 16)


def test_fallback_and_system_ids_are_sent_as_configured_not_hashed():
    chosen = rules(sources=["tenant"], fallback_id="shared", system_id="ogx-system", opaque_ids={"key": KEY})
    assert chosen.fairness_id(person(tenant=None)) == "shared"
    assert chosen.fairness_id(None) == "ogx-system"


# -- the cardinality guard -------------------------------------------------------------------------


def test_ids_past_the_limit_are_folded_into_the_overflow_bucket_and_logged():
    chosen = rules(sources=["tenant"], max_distinct_ids=3, overflow_id="spill")
    with structlog.testing.capture_logs() as logs:
        first = [chosen.fairness_id(person(tenant=f"t{i}")) for i in range(3)]
        folded = [chosen.fairness_id(person(tenant=f"late{i}")) for i in range(3)]
        again = [chosen.fairness_id(person(tenant=f"t{i}")) for i in range(3)]
    assert first == ["t0", "t1", "t2"] == again
    assert folded == ["spill", "spill", "spill"]
    assert chosen.guard.distinct_ids == 3 and chosen.guard.folded_calls == 3
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1, "logged once, not once per folded call"
    assert warnings[0]["max_distinct_ids"] == 3 and warnings[0]["plugin"] == "vllm_fairness"
    assert not any("late" in str(value) for value in warnings[0].values()), "the folded id is not logged"


def test_the_guard_counts_the_ids_actually_sent_after_hashing():
    chosen = rules(sources=["tenant"], max_distinct_ids=1, opaque_ids={"key": KEY})
    assert chosen.fairness_id(person(tenant="a")) == opaque_id("a", KEY.encode(), 16)
    assert chosen.fairness_id(person(tenant="b")) == "overflow"


def test_fallback_and_system_ids_do_not_use_up_the_limit():
    chosen = rules(sources=["tenant"], max_distinct_ids=1, fallback_id="shared", system_id="sys")
    assert chosen.fairness_id(person(tenant=None)) == "shared"
    assert chosen.fairness_id(None) == "sys"
    assert chosen.fairness_id(person(tenant="acme")) == "acme"


def test_guard_is_thread_safe_under_concurrent_admission():
    from concurrent.futures import ThreadPoolExecutor

    guard = CardinalityGuard(50, "overflow")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(guard.admit, [f"id-{i % 200}" for i in range(4000)]))
    assert guard.distinct_ids == 50
    assert len({r for r in results if r != "overflow"}) == 50


# -- header names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "names"), [
    ("gie", {GIE_FAIRNESS_ID, GIE_OBJECTIVE}),
    ("llm-d", {LLMD_FAIRNESS_ID, LLMD_OBJECTIVE}),
    ("both", {GIE_FAIRNESS_ID, GIE_OBJECTIVE, LLMD_FAIRNESS_ID, LLMD_OBJECTIVE}),
])
def test_header_name_modes(mode, names):
    chosen = rules(header_names=mode, objective={"attribute": "subscriptions", "default": "standard"})
    headers = chosen.headers(person(tenant="acme"))
    assert set(headers) == names
    assert {headers[n] for n in names if "fairness" in n} == {"acme"}
    assert {headers[n] for n in names if "objective" in n} == {"standard"}


def test_gie_names_are_the_default():
    assert rules().headers(person(tenant="acme")) == {GIE_FAIRNESS_ID: "acme"}


# -- objective -------------------------------------------------------------------------------------


OBJECTIVE = {"attribute": "subscriptions", "values": {"gold": "premium", "silver": "standard"},
             "default": "best-effort"}


def test_objective_maps_the_attribute_value():
    assert rules(objective=OBJECTIVE).objective(person(subscriptions=["silver"])) == "standard"


def test_objective_the_first_mapped_value_in_config_order_wins():
    assert rules(objective=OBJECTIVE).objective(person(subscriptions=["silver", "gold"])) == "premium"


def test_objective_default_for_unmapped_or_missing_values():
    chosen = rules(objective=OBJECTIVE)
    assert chosen.objective(person(subscriptions=["bronze"])) == "best-effort"
    assert chosen.objective(person()) == "best-effort"


def test_objective_without_default_sends_no_objective_header():
    chosen = rules(objective={"attribute": "subscriptions", "values": {"gold": "premium"}})
    assert chosen.headers(person(tenant="acme", subscriptions=["free"])) == {GIE_FAIRNESS_ID: "acme"}
    assert chosen.headers(person(tenant="acme", subscriptions=["gold"])) == {
        GIE_FAIRNESS_ID: "acme", GIE_OBJECTIVE: "premium"}


def test_no_objective_configured_sends_none():
    assert GIE_OBJECTIVE not in rules().headers(person(subscriptions=["gold"]))


# -- calls made for no user ------------------------------------------------------------------------


def test_no_user_gets_no_headers_by_default():
    assert rules(objective=OBJECTIVE, fallback_id="shared").headers(None) == {}


def test_no_user_gets_the_configured_system_id_and_objective():
    chosen = rules(system_id="ogx-system", system_objective="batch", header_names="both")
    assert chosen.headers(None) == {GIE_FAIRNESS_ID: "ogx-system", LLMD_FAIRNESS_ID: "ogx-system",
                                    GIE_OBJECTIVE: "batch", LLMD_OBJECTIVE: "batch"}
