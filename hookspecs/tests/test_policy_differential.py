"""Our policy engine against OGX 1.5's own ``is_action_allowed``, on generated cases.

The oracle for a user is ``tenant partition AND ogx.is_action_allowed``; the partition is the one
documented deviation (see ``ogx_tenancy.policy``). No actor and the system context are tested in
test_policy.py.
"""

from __future__ import annotations

import random

import pytest
from ogx.core.access_control.access_control import is_action_allowed
from ogx.core.access_control.datatypes import AccessRule
from ogx.core.access_control.datatypes import Action as OgxAction
from ogx.core.datatypes import User

from ogx_tenancy.policy import (
    Action,
    IdEquals,
    IdPrefix,
    IdRegex,
    OwnerIs,
    OwnerShares,
    Policy,
    Resource,
    RowFacts,
    Unowned,
    in_partition,
)
from ogx_tenancy.types import Identity

CASES = 12_000
CATEGORIES = ["roles", "teams", "projects", "namespaces", "clearance"]
VALUES = ["a", "b", "c", "system:authenticated", "admin"]
PRINCIPALS = ["alice", "bob", "carol"]
TENANTS = [None, "t1", "t2"]
TYPES = ["sql_record::prompts", "sql_record::batches", "model"]
IDENTIFIERS = ["p1", "p2", "pre::x", "pre::y", "prefix", "*"]
CONDITION_FORMS = [
    lambda r: "user is owner",
    lambda r: "user is not owner",
    lambda r: f"user in owners {r.choice(CATEGORIES)}",
    lambda r: f"user not in owners {r.choice(CATEGORIES)}",
    lambda r: f"user with {r.choice(VALUES)} in {r.choice(CATEGORIES)}",
    lambda r: f"user with {r.choice(VALUES)} not in {r.choice(CATEGORIES)}",
    lambda r: "resource is unowned",
]
RESOURCE_SCOPES = [
    lambda r: None,
    lambda r: "",
    lambda r: f"{r.choice(TYPES)}::{r.choice(IDENTIFIERS)}",
    lambda r: f"{r.choice(TYPES)}::*",
    lambda r: "sql_record::*",
    lambda r: "sql_record::prompts::pre::*",
    lambda r: "sql_record::pro::*",
    lambda r: "regex:sql_record::(prompts|batches)::p\\d",
    lambda r: "regex:.*::pre",
    lambda r: "regex:(unclosed",
]


def random_rule(r: random.Random) -> dict:
    actions = r.sample([a.value for a in Action], r.randint(0, 4))
    scope: dict = {"actions": actions[0] if len(actions) == 1 and r.random() < 0.5 else actions}
    if r.random() < 0.25:
        scope["principal"] = r.choice(PRINCIPALS)
    resource = r.choice(RESOURCE_SCOPES)(r)
    if resource is not None:
        scope["resource"] = resource
    rule: dict = {"permit" if r.random() < 0.6 else "forbid": scope}
    kind = r.random()
    if kind < 0.7:
        conditions = [r.choice(CONDITION_FORMS)(r) for _ in range(r.randint(0, 3))]
        value = conditions[0] if len(conditions) == 1 and r.random() < 0.5 else conditions
        rule["when" if kind < 0.45 else "unless"] = value
    return rule


def random_attributes(r: random.Random) -> dict[str, list[str]] | None:
    if r.random() < 0.1:
        return None
    return {c: r.sample(VALUES, r.randint(0, 3)) for c in r.sample(CATEGORIES, r.randint(0, 3))}


def random_case(r: random.Random):
    rules = [random_rule(r) for _ in range(r.randint(0, 5))]
    owner = r.choice([*PRINCIPALS, "", None])
    resource = Resource(
        type=r.choice(TYPES),
        identifier=r.choice(IDENTIFIERS),
        owner_principal=owner,
        owner_attributes=random_attributes(r),
        tenant_id=r.choice(TENANTS),
    )
    user_attrs = random_attributes(r) or {}
    identity = Identity(principal=r.choice(PRINCIPALS), attributes=user_attrs, tenant_id=r.choice(TENANTS))
    return rules, resource, identity, r.choice(list(Action))


class OgxRecord:
    """What OGX's AuthorizedSqlStore hands is_action_allowed for a row."""

    def __init__(self, resource: Resource):
        self.type = resource.type
        self.identifier = resource.identifier
        self.owner = (
            User(resource.owner_principal, resource.owner_attributes, tenant_id=resource.tenant_id)
            if resource.owner_principal
            else None
        )


def oracle(rules: list[dict], resource: Resource, identity: Identity, action: Action) -> bool:
    user = User(identity.principal, identity.attributes_as_lists(), tenant_id=identity.tenant_id)
    ogx_rules = [AccessRule(**rule) for rule in rules]
    return in_partition(resource.tenant_id, identity) and is_action_allowed(
        ogx_rules, OgxAction(action.value), OgxRecord(resource), user
    )


def test_policy_matches_ogx_is_action_allowed():
    r = random.Random(20261128)
    mismatches = []
    allowed = 0
    for case in range(CASES):
        rules, resource, identity, action = random_case(r)
        expected = oracle(rules, resource, identity, action)
        got = Policy.parse(rules).is_allowed(action, resource, identity)
        allowed += expected
        if got != expected:
            mismatches.append((case, rules, resource, identity, action, expected))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[0]}"
    # the generator must exercise both answers, or the comparison proves little
    assert CASES * 0.1 < allowed < CASES * 0.9


def test_row_filter_matches_is_allowed_inside_the_partition():
    r = random.Random(7)
    checked = 0
    for _ in range(CASES):
        rules, resource, identity, action = random_case(r)
        if not in_partition(resource.tenant_id, identity):
            continue
        policy = Policy.parse(rules)
        expr = policy.row_filter(action, resource.type, identity)
        row = RowFacts(resource.identifier, resource.owner_principal, resource.owner_attributes)
        expected = policy.is_allowed(action, resource, identity)
        assert expr.evaluate(row) == expected, (rules, resource, identity, action, expr)
        # dropping what SQL cannot push down must only ever widen the filter
        relaxed = expr.relax(tuple(t for t in _ATOM_TYPES if t is not IdRegex))
        assert not any(isinstance(a, IdRegex) for a in relaxed.atoms())
        if expected:
            assert relaxed.evaluate(row), (rules, resource, identity, action, relaxed)
        checked += 1
    assert checked > CASES // 2


_ATOM_TYPES = (OwnerIs, OwnerShares, Unowned, IdEquals, IdPrefix, IdRegex)


@pytest.mark.parametrize("seed", range(3))
def test_ogx_default_policy_equals_our_default(seed):
    """An empty policy is OGX's default_policy() in both engines."""
    r = random.Random(seed)
    for _ in range(2000):
        _, resource, identity, action = random_case(r)
        assert Policy.default().is_allowed(action, resource, identity) == oracle([], resource, identity, action)
