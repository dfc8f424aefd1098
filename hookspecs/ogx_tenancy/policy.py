"""OGX's access-policy language, decided with OGX 1.5's exact semantics, behind a tenant partition.

This is the one place the policy semantics live. ``Policy.is_allowed`` answers one action on one
resource; ``Policy.row_filter`` turns the same decision into a boolean expression over a row's
owner, attributes and id, which SQL stores compile (``Expr.relax`` drops what they cannot push down)
and evaluate in Python for the rest.

Differences from OGX 1.5, all deliberate:

* the tenant partition comes first: a row belongs to one tenant (or to none — a global row), and a
  caller sees only global rows and rows of their own tenant. OGX lets an unowned row of tenant A be
  seen from tenant B, and rows of any tenant be seen by a caller without one.
* no actor means deny (OGX allows everything without a user); the explicit ``SystemContext`` allows.
* unknown keys in a rule are an error instead of being ignored (a misspelt ``when`` would otherwise
  turn a conditional permit into an unconditional one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .context import Actor, SystemContext
from .types import ATTRIBUTE_CATEGORIES, Identity


class Action(StrEnum):
    """The four actions a rule can permit or forbid."""

    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"


class PolicyError(ValueError):
    """An access policy that cannot be parsed; the message names the rule and what is wrong."""


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resource:
    """A protected thing: its type (``sql_record::prompts``), id, owner and tenant.

    A resource is *unowned* when ``owner_principal`` is None or empty — one meaning for reading and
    writing alike (legacy rows with a NULL owner included).
    """

    type: str
    identifier: str
    owner_principal: str | None = None
    owner_attributes: Mapping[str, Sequence[str]] | None = None
    tenant_id: str | None = None

    @property
    def owned(self) -> bool:
        return bool(self.owner_principal)


def record_type(table: str) -> str:
    """The resource type OGX gives rows of an SQL table: ``sql_record::<table>``."""
    return f"sql_record::{table}"


def tenant_partition(actor: Actor | None) -> tuple[str, ...] | None:
    """Tenant ids (``""`` = global rows) whose rows ``actor`` may touch at all.

    ``None`` means every tenant (a system context with no tenant); an empty tuple means none.
    """
    if actor is None:
        return ()
    if isinstance(actor, SystemContext) and actor.tenant_id is None:
        return None
    tenant = actor.tenant_id
    return ("", tenant) if tenant else ("",)


def in_partition(resource_tenant: str | None, actor: Actor | None) -> bool:
    allowed = tenant_partition(actor)
    return allowed is None or (resource_tenant or "") in allowed


# --------------------------------------------------------------------------------------------
# Conditions (the ``when`` / ``unless`` language), ported from OGX 1.5's conditions.py
# --------------------------------------------------------------------------------------------


def _tenant_mismatch(resource: Resource, user: Identity) -> bool:
    if not resource.owned:
        return False
    return bool(resource.tenant_id) and bool(user.tenant_id) and resource.tenant_id != user.tenant_id


def _owner_values(resource: Resource, category: str) -> Sequence[str] | None:
    attrs = resource.owner_attributes
    if resource.owned and attrs and category in attrs:
        return attrs[category]
    return None


@dataclass(frozen=True, slots=True)
class Condition:
    """One parsed condition. ``kind`` is one of the seven forms OGX accepts."""

    kind: Literal[
        "user is owner",
        "user is not owner",
        "user in owners",
        "user not in owners",
        "user with value in",
        "user with value not in",
        "resource is unowned",
    ]
    category: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        match self.kind:
            case "user in owners" | "user not in owners":
                return f"{self.kind} {self.category}"
            case "user with value in":
                return f"user with {self.value} in {self.category}"
            case "user with value not in":
                return f"user with {self.value} not in {self.category}"
            case _:
                return self.kind

    def matches(self, resource: Resource, user: Identity) -> bool:
        match self.kind:
            case "user is owner":
                return (
                    resource.owned
                    and resource.owner_principal == user.principal
                    and not _tenant_mismatch(resource, user)
                )
            case "user is not owner":
                if _tenant_mismatch(resource, user):
                    return False
                return not resource.owned or resource.owner_principal != user.principal
            case "user in owners":
                return self._in_owners(resource, user)
            case "user not in owners":
                if _tenant_mismatch(resource, user):
                    return False
                return not self._in_owners(resource, user)
            case "user with value in":
                return self._user_has_value(user)
            case "user with value not in":
                return not self._user_has_value(user)
            case "resource is unowned":
                return not resource.owned
        raise AssertionError(self.kind)

    def _in_owners(self, resource: Resource, user: Identity) -> bool:
        assert self.category is not None
        if _tenant_mismatch(resource, user):
            return False
        defined = _owner_values(resource, self.category)
        if not defined:
            return False
        user_values = user.attributes.get(self.category)
        if not user_values:
            return False
        return any(value in user_values for value in defined)

    def _user_has_value(self, user: Identity) -> bool:
        values = user.attributes.get(self.category or "")
        return values is not None and self.value in values


def parse_condition(text: str) -> Condition:
    """Parse one condition exactly as OGX does: whitespace-separated words, seven forms."""
    match text.split():
        case ["user", "is", "owner"]:
            return Condition("user is owner")
        case ["user", "is", "not", "owner"]:
            return Condition("user is not owner")
        case ["user", "with", value, "in", name]:
            return Condition("user with value in", category=name, value=value)
        case ["user", "with", value, "not", "in", name]:
            return Condition("user with value not in", category=name, value=value)
        case ["user", "in", "owners", name]:
            return Condition("user in owners", category=name)
        case ["user", "not", "in", "owners", name]:
            return Condition("user not in owners", category=name)
        case ["resource", "is", "unowned"]:
            return Condition("resource is unowned")
    raise PolicyError(
        f"invalid condition {text!r}; expected one of: 'user is owner', 'user is not owner', "
        "'user in owners <category>', 'user not in owners <category>', 'user with <value> in <category>', "
        "'user with <value> not in <category>', 'resource is unowned'"
    )


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


class _ScopeModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal: str | None = None
    actions: Action | list[Action]
    resource: str | None = None


class _RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    permit: _ScopeModel | None = None
    forbid: _ScopeModel | None = None
    when: str | list[str] | None = None
    unless: str | list[str] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _one_effect_one_condition_kind(self) -> _RuleModel:
        if not self.permit and not self.forbid:
            raise ValueError("a rule needs 'permit' or 'forbid'")
        if self.permit and self.forbid:
            raise ValueError("'permit' and 'forbid' are mutually exclusive")
        if self.when and self.unless:
            raise ValueError("'when' and 'unless' are mutually exclusive")
        return self


@dataclass(frozen=True, slots=True)
class Scope:
    principal: str | None
    actions: frozenset[Action]
    resource: str | None


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed rule. ``when``/``unless`` are None when absent (or empty, as OGX treats them)."""

    effect: Literal["permit", "forbid"]
    scope: Scope
    when: tuple[Condition, ...] | None = None
    unless: tuple[Condition, ...] | None = None
    description: str | None = None


def _conditions(value: str | list[str] | None) -> tuple[Condition, ...] | None:
    if not value:
        return None
    texts = value if isinstance(value, list) else [value]
    return tuple(parse_condition(text) for text in texts)


def parse_rule(data: Mapping[str, Any] | Any) -> Rule:
    """Parse one rule from its YAML/dict form (or an object with OGX's AccessRule fields)."""
    if not isinstance(data, Mapping):
        if hasattr(data, "model_dump"):
            data = data.model_dump(exclude_none=True)
        else:
            raise PolicyError(f"a rule must be a mapping, got {type(data).__name__}")
    model = _RuleModel.model_validate(dict(data))
    effect: Literal["permit", "forbid"] = "permit" if model.permit else "forbid"
    scope_model = model.permit or model.forbid
    assert scope_model is not None
    actions = scope_model.actions if isinstance(scope_model.actions, list) else [scope_model.actions]
    return Rule(
        effect=effect,
        scope=Scope(scope_model.principal, frozenset(actions), scope_model.resource),
        when=_conditions(model.when),
        unless=_conditions(model.unless) if not model.when else None,
        description=model.description,
    )


def default_rules() -> tuple[Rule, ...]:
    """OGX 1.5's ``default_policy()``: share on any common value in any category, own, or unowned."""
    every = frozenset(Action)
    # OGX builds these from a frozenset of category names; their order cannot change a permit-only
    # policy's decision, so a fixed order is used here.
    rules = [
        Rule("permit", Scope(None, every, None), when=(Condition("user in owners", category=c),))
        for c in ATTRIBUTE_CATEGORIES
    ]
    rules.append(Rule("permit", Scope(None, every, None), when=(Condition("user is owner"),)))
    rules.append(Rule("permit", Scope(None, every, None), when=(Condition("resource is unowned"),)))
    return tuple(rules)


# --------------------------------------------------------------------------------------------
# Row filters: the decision as an expression over one row
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowFacts:
    """What a row filter looks at: the row's id and owner (the tenant is the partition's job)."""

    identifier: str
    owner_principal: str | None
    owner_attributes: Mapping[str, Sequence[str]] | None


class Expr:
    """A boolean expression over one row. Subclasses are the atoms and connectives below."""

    def evaluate(self, row: RowFacts) -> bool:
        raise NotImplementedError

    def atoms(self) -> Iterable[Expr]:
        yield self

    def relax(self, supported: tuple[type[Expr], ...], *, positive: bool = True) -> Expr:
        """An over-approximation using only ``supported`` atom types.

        Every row the original accepts, the relaxed expression accepts too, so a store can filter
        in the database with the relaxed form and finish with ``evaluate``.
        """
        if isinstance(self, supported):
            return self
        return TRUE if positive else FALSE


@dataclass(frozen=True, slots=True)
class Const(Expr):
    value: bool

    def evaluate(self, row: RowFacts) -> bool:
        return self.value

    def atoms(self) -> Iterable[Expr]:
        return ()

    def relax(self, supported: tuple[type[Expr], ...], *, positive: bool = True) -> Expr:
        return self


TRUE = Const(True)
FALSE = Const(False)


@dataclass(frozen=True, slots=True)
class OwnerIs(Expr):
    """The row is owned by ``principal``."""

    principal: str

    def evaluate(self, row: RowFacts) -> bool:
        return bool(row.owner_principal) and row.owner_principal == self.principal


@dataclass(frozen=True, slots=True)
class Unowned(Expr):
    """The row has no owner (NULL or empty ``owner_principal``)."""

    def evaluate(self, row: RowFacts) -> bool:
        return not row.owner_principal


@dataclass(frozen=True, slots=True)
class OwnerShares(Expr):
    """The row is owned, and its owner's ``category`` holds at least one of ``values``."""

    category: str
    values: tuple[str, ...]

    def evaluate(self, row: RowFacts) -> bool:
        if not row.owner_principal or not row.owner_attributes:
            return False
        defined = row.owner_attributes.get(self.category)
        return bool(defined) and any(value in self.values for value in defined)


@dataclass(frozen=True, slots=True)
class IdEquals(Expr):
    identifier: str

    def evaluate(self, row: RowFacts) -> bool:
        return row.identifier == self.identifier


@dataclass(frozen=True, slots=True)
class IdPrefix(Expr):
    prefix: str

    def evaluate(self, row: RowFacts) -> bool:
        return row.identifier.startswith(self.prefix)


@dataclass(frozen=True, slots=True)
class IdRegex(Expr):
    """OGX's ``regex:`` resource scope: ``re.match`` on ``<type>::<id>`` (invalid pattern = no match)."""

    pattern: str
    resource_type: str

    def evaluate(self, row: RowFacts) -> bool:
        try:
            return re.match(self.pattern, f"{self.resource_type}::{row.identifier}") is not None
        except re.error:
            return False


@dataclass(frozen=True, slots=True)
class Not(Expr):
    part: Expr

    def evaluate(self, row: RowFacts) -> bool:
        return not self.part.evaluate(row)

    def atoms(self) -> Iterable[Expr]:
        return self.part.atoms()

    def relax(self, supported: tuple[type[Expr], ...], *, positive: bool = True) -> Expr:
        return negate(self.part.relax(supported, positive=not positive))


@dataclass(frozen=True, slots=True)
class And(Expr):
    parts: tuple[Expr, ...]

    def evaluate(self, row: RowFacts) -> bool:
        return all(part.evaluate(row) for part in self.parts)

    def atoms(self) -> Iterable[Expr]:
        for part in self.parts:
            yield from part.atoms()

    def relax(self, supported: tuple[type[Expr], ...], *, positive: bool = True) -> Expr:
        return conjoin(part.relax(supported, positive=positive) for part in self.parts)


@dataclass(frozen=True, slots=True)
class Or(Expr):
    parts: tuple[Expr, ...]

    def evaluate(self, row: RowFacts) -> bool:
        return any(part.evaluate(row) for part in self.parts)

    def atoms(self) -> Iterable[Expr]:
        for part in self.parts:
            yield from part.atoms()

    def relax(self, supported: tuple[type[Expr], ...], *, positive: bool = True) -> Expr:
        return disjoin(part.relax(supported, positive=positive) for part in self.parts)


def negate(expr: Expr) -> Expr:
    if isinstance(expr, Const):
        return FALSE if expr.value else TRUE
    if isinstance(expr, Not):
        return expr.part
    return Not(expr)


def conjoin(parts: Iterable[Expr]) -> Expr:
    flat: list[Expr] = []
    for part in parts:
        if part == FALSE:
            return FALSE
        if part == TRUE:
            continue
        for sub in part.parts if isinstance(part, And) else (part,):
            if sub not in flat:
                flat.append(sub)
    if not flat:
        return TRUE
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def disjoin(parts: Iterable[Expr]) -> Expr:
    flat: list[Expr] = []
    for part in parts:
        if part == TRUE:
            return TRUE
        if part == FALSE:
            continue
        for sub in part.parts if isinstance(part, Or) else (part,):
            if sub not in flat:
                flat.append(sub)
    if not flat:
        return FALSE
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def _resource_scope_expr(scope_resource: str, resource_type: str) -> Expr:
    """When does OGX's ``matches_resource(scope_resource, f"{type}::{id}")`` hold, as a row expression."""
    type_prefix = f"{resource_type}::"
    exact = IdEquals(scope_resource[len(type_prefix) :]) if scope_resource.startswith(type_prefix) else FALSE
    if scope_resource.startswith("regex:"):
        return disjoin([exact, IdRegex(scope_resource[len("regex:") :], resource_type)])
    if not scope_resource.endswith("::*"):
        return exact
    prefix = scope_resource[:-1]
    if len(prefix) <= len(type_prefix):
        wildcard: Expr = TRUE if type_prefix.startswith(prefix) else FALSE
    elif prefix.startswith(type_prefix):
        wildcard = IdPrefix(prefix[len(type_prefix) :])
    else:
        wildcard = FALSE
    return disjoin([exact, wildcard])


def _condition_expr(condition: Condition, user: Identity) -> Expr:
    # Inside the tenant partition OGX's tenant-mismatch checks never fire (see module docstring),
    # so each condition depends on the row's owner only.
    match condition.kind:
        case "user is owner":
            return OwnerIs(user.principal or "")
        case "user is not owner":
            return negate(OwnerIs(user.principal or ""))
        case "user in owners" | "user not in owners":
            values = user.attributes.get(condition.category or "")
            shares: Expr = OwnerShares(condition.category or "", tuple(values)) if values else FALSE
            return shares if condition.kind == "user in owners" else negate(shares)
        case "user with value in" | "user with value not in":
            has = condition._user_has_value(user)
            return Const(has if condition.kind == "user with value in" else not has)
        case "resource is unowned":
            return Unowned()
    raise AssertionError(condition.kind)


# --------------------------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------------------------


class Policy:
    """An ordered list of rules: the first whose scope and condition match decides; none = deny.

    An empty list means OGX's default policy, as in OGX.
    """

    def __init__(self, rules: Iterable[Rule] = ()):
        rules = tuple(rules)
        self.is_default = not rules
        self.rules: tuple[Rule, ...] = rules or default_rules()

    @classmethod
    def parse(cls, data: Iterable[Mapping[str, Any] | Any] | None) -> Policy:
        """Parse OGX's ``access_policy`` list; errors name the rule's position and the problem."""
        rules = []
        for index, item in enumerate(data or ()):
            try:
                rules.append(parse_rule(item))
            except ValidationError as e:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'rule'}: {err['msg']}" for err in e.errors()
                )
                raise PolicyError(f"access_policy rule {index}: {problems}") from None
            except PolicyError as e:
                raise PolicyError(f"access_policy rule {index}: {e}") from None
        return cls(rules)

    @classmethod
    def default(cls) -> Policy:
        return cls(())

    def __repr__(self) -> str:
        return f"Policy({'default' if self.is_default else f'{len(self.rules)} rules'})"

    # -- one decision -------------------------------------------------------------------------

    def is_allowed(self, action: Action | str, resource: Resource, actor: Actor | None) -> bool:
        """May ``actor`` perform ``action`` on ``resource``?

        The tenant partition first; then, for a user, OGX's rule evaluation; a system context is
        allowed; no actor is denied.
        """
        if actor is None or not in_partition(resource.tenant_id, actor):
            return False
        if isinstance(actor, SystemContext):
            return True
        return self._ogx_decision(Action(action), resource, actor)

    def _ogx_decision(self, action: Action, resource: Resource, user: Identity) -> bool:
        if _tenant_mismatch(resource, user):
            return False
        qualified = f"{resource.type}::{resource.identifier}"
        for rule in self.rules:
            if not _scope_matches(rule.scope, action, qualified, user.principal):
                continue
            if rule.when is not None:
                applies = all(c.matches(resource, user) for c in rule.when)
            elif rule.unless is not None:
                applies = not all(c.matches(resource, user) for c in rule.unless)
            else:
                applies = True
            if applies:
                return rule.effect == "permit"
        return False

    # -- a filter over rows -------------------------------------------------------------------

    def row_filter(self, action: Action | str, resource_type: str, actor: Actor | None) -> Expr:
        """The decision for every row of ``resource_type`` in the actor's partition, as an ``Expr``.

        ``expr.evaluate(RowFacts(...))`` equals ``is_allowed`` for any row whose tenant is in
        ``tenant_partition(actor)``; stores apply that partition themselves.
        """
        if actor is None:
            return FALSE
        if isinstance(actor, SystemContext):
            return TRUE
        action = Action(action)
        decision: Expr = FALSE
        for rule in reversed(self.rules):
            applies = conjoin(
                [self._scope_expr(rule.scope, action, resource_type, actor), self._when_expr(rule, actor)]
            )
            # first match wins: permit => applies OR rest; forbid => NOT applies AND rest
            decision = disjoin([applies, decision]) if rule.effect == "permit" else conjoin([negate(applies), decision])
        return decision

    @staticmethod
    def _scope_expr(scope: Scope, action: Action, resource_type: str, user: Identity) -> Expr:
        if action not in scope.actions:
            return FALSE
        if scope.principal and scope.principal != user.principal:
            return FALSE
        if not scope.resource:
            return TRUE
        return _resource_scope_expr(scope.resource, resource_type)

    @staticmethod
    def _when_expr(rule: Rule, user: Identity) -> Expr:
        if rule.when is not None:
            return conjoin(_condition_expr(c, user) for c in rule.when)
        if rule.unless is not None:
            return negate(conjoin(_condition_expr(c, user) for c in rule.unless))
        return TRUE


def _scope_matches(scope: Scope, action: Action, qualified: str, principal: str | None) -> bool:
    if scope.resource and not _matches_resource(scope.resource, qualified):
        return False
    if scope.principal and scope.principal != principal:
        return False
    return action in scope.actions


def _matches_resource(scope_resource: str, actual: str) -> bool:
    if scope_resource == actual:
        return True
    if scope_resource.startswith("regex:"):
        try:
            return re.match(scope_resource[len("regex:") :], actual) is not None
        except re.error:
            return False
    return scope_resource.endswith("::*") and actual.startswith(scope_resource[:-1])
