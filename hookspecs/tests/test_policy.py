"""Policy parsing and the cases the differential test leaves out: no actor, system context, partition."""

from __future__ import annotations

import pytest

from ogx_tenancy.context import SystemContext
from ogx_tenancy.policy import FALSE, TRUE, Action, Policy, PolicyError, Resource, tenant_partition
from ogx_tenancy.types import Identity

ROW = Resource("sql_record::prompts", "p1", "alice", {"teams": ["a"]}, "t1")


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"permit": {"actions": ["read"]}, "when": "user is the owner"}], "invalid condition"),
        ([{"permit": {"actions": ["read"]}, "wehn": "user is owner"}], "wehn"),
        ([{"permit": {"actions": ["read"]}, "forbid": {"actions": ["read"]}}], "mutually exclusive"),
        (
            [{"permit": {"actions": ["read"]}, "when": "user is owner", "unless": "resource is unowned"}],
            "mutually exclusive",
        ),
        ([{"description": "nothing"}], "permit"),
        ([{"permit": {"actions": ["fly"]}}], "actions"),
        (["permit everything"], "mapping"),
    ],
)
def test_bad_rules_name_the_rule_and_the_problem(rules, message):
    with pytest.raises(PolicyError) as info:
        Policy.parse([{"permit": {"actions": ["read"]}}, *rules])
    assert "rule 1" in str(info.value) and message in str(info.value)


def test_empty_policy_is_ogx_default():
    assert Policy.parse([]).is_default and Policy.parse(None).is_default
    assert not Policy.parse([{"permit": {"actions": ["read"]}}]).is_default


def test_no_actor_is_denied_everything():
    policy = Policy.parse([{"permit": {"actions": list(Action)}}])
    for action in Action:
        assert not policy.is_allowed(action, ROW, None)
    assert policy.row_filter(Action.READ, ROW.type, None) == FALSE
    assert tenant_partition(None) == ()


def test_system_context_is_allowed_within_its_tenant():
    policy = Policy.parse([{"forbid": {"actions": list(Action)}}])
    assert policy.is_allowed(Action.DELETE, ROW, SystemContext("migration"))
    assert policy.is_allowed(Action.DELETE, ROW, SystemContext("registration", tenant_id="t1"))
    assert not policy.is_allowed(Action.READ, ROW, SystemContext("registration", tenant_id="t2"))
    assert policy.row_filter(Action.READ, ROW.type, SystemContext("x")) == TRUE
    assert tenant_partition(SystemContext("x")) is None


def test_partition_hides_other_tenants_rows_even_when_ogx_would_share_them():
    policy = Policy.default()
    unowned_in_t1 = Resource("sql_record::connectors", "c1", None, None, "t1")
    assert policy.is_allowed(Action.READ, unowned_in_t1, Identity("bob", tenant_id="t1"))
    assert not policy.is_allowed(Action.READ, unowned_in_t1, Identity("bob", tenant_id="t2"))
    # a caller without a tenant sees only global rows
    assert not policy.is_allowed(Action.READ, ROW, Identity("alice"))
    global_row = Resource("sql_record::connectors", "c2", None, None, "")
    assert policy.is_allowed(Action.READ, global_row, Identity("bob", tenant_id="t2"))


def test_default_policy_shares_on_any_common_value():
    # OGX's semantics, including its weakness: one shared pseudo-group shares everything
    row = Resource("sql_record::prompts", "p", "alice", {"teams": ["system:authenticated"]}, "")
    assert Policy.default().is_allowed(Action.UPDATE, row, Identity("bob", {"teams": ["system:authenticated"]}))


def test_owner_policy_with_team_read():
    policy = Policy.parse(
        [
            {"permit": {"actions": list(Action)}, "when": "user is owner"},
            {"permit": {"actions": ["read"]}, "when": ["user in owners teams"]},
        ]
    )
    member = Identity("bob", {"teams": ["a"]}, "t1")
    assert policy.is_allowed("read", ROW, member)
    assert not policy.is_allowed("update", ROW, member)
    assert policy.is_allowed("update", ROW, Identity("alice", {}, "t1"))
