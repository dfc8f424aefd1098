"""The stores against OGX 1.5's own ``is_action_allowed``, brute-forced over every row, on both dialects.

Random rows (ids that repeat across tenants, NULL owners, random attributes and field values) are
loaded once per dataset; then many random policies x random identities run against them. For each
case the oracle evaluates ``tenant partition AND is_action_allowed`` (OGX's function, with the row
adapted the way OGX's AuthorizedSqlStore adapts it) over *all* rows, and must equal:

* ``list``: every page concatenated — the rows, in order, with random order_by / descending /
  limit / where, for a random action (rows the caller may read and perform the action on);
* ``get``: the row an id addresses (own tenant first, then global; the first readable one);
* ``update_where`` / ``delete_where``: exactly the rows changed (checked inside a transaction that
  is then rolled back), and ``update`` / ``delete`` by id: the outcome (done, not found, denied).

Policies include forbid rules, ``unless``, principal scopes and every resource-scope form —
exact ids, ``::*`` prefixes (with LIKE metacharacters in ids), and ``regex:`` scopes, which the
store cannot push down and must finish in Python while still returning complete pages.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from ogx.core.access_control.access_control import is_action_allowed
from ogx.core.access_control.datatypes import AccessRule
from ogx.core.access_control.datatypes import Action as OgxAction
from ogx.core.datatypes import User

from ogx_tenancy import Identity, Owner, Policy, acting_as, system_context
from ogx_tenancy.policy import Action, in_partition
from ogx_tenancy.store import AccessDenied, CollectionSpec, FieldSpec, RowNotFound
from ogx_tenancy_sql import store as store_module

COLLECTION = "items"
SPEC = CollectionSpec(
    COLLECTION,
    (
        FieldSpec("name", "str", indexed=True),
        FieldSpec("n", "int", indexed=True),
        FieldSpec("score", "float"),
        FieldSpec("flag", "bool"),
    ),
)
CATEGORIES = ["roles", "teams", "projects", "namespaces", "clearance"]
VALUES = ["a", "b", "c", "system:authenticated", "admin"]
PRINCIPALS = ["alice", "bob", "carol", "dave"]
TENANTS = ["", "t1", "t2"]
IDS = ["p1", "p2", "P1", "pre::x", "pre::y", "prefix", "pre%x", "pre_y", "*", "é1", "p10"]
NAMES = [None, "x", "y", "Y", "é", "x y"]
TYPES = [f"sql_record::{COLLECTION}", "sql_record::other", "model"]

CONDITIONS = [
    lambda r: "user is owner",
    lambda r: "user is not owner",
    lambda r: f"user in owners {r.choice(CATEGORIES)}",
    lambda r: f"user not in owners {r.choice(CATEGORIES)}",
    lambda r: f"user with {r.choice(VALUES)} in {r.choice(CATEGORIES)}",
    lambda r: f"user with {r.choice(VALUES)} not in {r.choice(CATEGORIES)}",
    lambda r: "resource is unowned",
]
SCOPES = [
    lambda r: None,
    lambda r: f"{r.choice(TYPES)}::{r.choice(IDS)}",
    lambda r: f"{r.choice(TYPES)}::*",
    lambda r: "sql_record::*",
    lambda r: f"sql_record::{COLLECTION}::pre::*",
    lambda r: f"sql_record::{COLLECTION}::pre%*",
    lambda r: f"sql_record::{COLLECTION}::p*",
    lambda r: "sql_record::ite::*",
    lambda r: f"regex:sql_record::{COLLECTION}::p\\d",
    lambda r: "regex:.*::pre",
    lambda r: "regex:(unclosed",
]


def random_rule(r: random.Random) -> dict:
    actions = r.sample([a.value for a in Action], r.randint(1, 4))
    scope: dict = {"actions": actions}
    if r.random() < 0.15:
        scope["principal"] = r.choice(PRINCIPALS)
    resource = r.choice(SCOPES)(r) if r.random() < 0.5 else None
    if resource is not None:
        scope["resource"] = resource
    rule: dict = {"permit" if r.random() < 0.7 else "forbid": scope}
    kind = r.random()
    if kind < 0.75:
        conditions = [r.choice(CONDITIONS)(r) for _ in range(r.randint(1, 2))]
        rule["when" if kind < 0.5 else "unless"] = conditions
    return rule


def random_policy(r: random.Random) -> list[dict]:
    if r.random() < 0.2:
        return []  # OGX's default policy
    return [random_rule(r) for _ in range(r.randint(1, 5))]


def random_attributes(r: random.Random) -> dict[str, list[str]]:
    return {c: r.sample(VALUES, r.randint(1, 2)) for c in r.sample(CATEGORIES, r.randint(0, 2))}


def random_identity(r: random.Random) -> Identity:
    return Identity(r.choice(PRINCIPALS), random_attributes(r), r.choice([None, "t1", "t2"]))


@dataclass(frozen=True)
class StoredRow:
    tenant_id: str
    id: str
    owner: str | None
    attributes: dict[str, list[str]] | None
    data: dict


def random_rows(r: random.Random, count: int) -> list[StoredRow]:
    rows: dict[tuple[str, str], StoredRow] = {}
    while len(rows) < count:
        tenant, id = r.choice(TENANTS), r.choice(IDS) + ("" if r.random() < 0.5 else str(r.randint(0, 9)))
        owner = r.choice([*PRINCIPALS, None, None])
        data = {
            "name": r.choice(NAMES),
            "n": r.choice([None, 0, 1, 2, 3]),
            "score": r.choice([None, -1.5, 0.0, 2.25]),
            "flag": r.choice([None, True, False]),
        }
        rows[(tenant, id)] = StoredRow(tenant, id, owner, random_attributes(r) if r.random() < 0.8 else None, data)
    return list(rows.values())


class _OgxRecord:
    """What OGX's AuthorizedSqlStore hands is_action_allowed for a row."""

    def __init__(self, collection: str, row: StoredRow):
        self.type = f"sql_record::{collection}"
        self.identifier = row.id
        self.owner = User(row.owner, row.attributes, tenant_id=row.tenant_id or None) if row.owner else None


class Oracle:
    """Brute force: OGX's is_action_allowed over every row, behind the tenant partition."""

    def __init__(self, collection: str, rules: list[dict], identity: Identity):
        self.collection = collection
        self.rules = [AccessRule(**rule) for rule in rules]
        self.identity = identity
        self.user = User(identity.principal, identity.attributes_as_lists(), tenant_id=identity.tenant_id)
        self._decided: dict[tuple[str, str, str], bool] = {}

    def allowed(self, action: str, row: StoredRow) -> bool:
        key = (action, row.tenant_id, row.id)
        if key not in self._decided:  # each (row, action) asked of OGX once per policy and identity
            self._decided[key] = in_partition(row.tenant_id, self.identity) and is_action_allowed(
                self.rules, OgxAction(action), _OgxRecord(self.collection, row), self.user
            )
        return self._decided[key]

    def may(self, action: str, row: StoredRow) -> bool:
        """What the store promises for listing and bulk changes: read and the action."""
        return self.allowed("read", row) and self.allowed(action, row)

    def addressed(self, rows: list[StoredRow], id: str) -> StoredRow | None:
        by_key = {(row.tenant_id, row.id): row for row in rows}
        tenants = [self.identity.tenant_id, ""] if self.identity.tenant_id else [""]
        for tenant in tenants:
            row = by_key.get((tenant, id))
            if row is not None and self.allowed("read", row):
                return row
        return None


def sort_key(order: str | None, row_tenant: str, row_id: str, data: dict) -> tuple:
    if order is None:
        return (row_id, row_tenant)
    value = data[order]
    return (value is not None, value if value is not None else 0, row_id, row_tenant)


async def load(store, rows: list[StoredRow]) -> None:
    with system_context("differential test fixture"):
        for row in rows:
            await store.create(row.id, row.data, owner=Owner(row.owner, row.attributes, row.tenant_id))


async def check_list(store, oracle: Oracle, rows: list[StoredRow], r: random.Random, monkeypatch) -> str | None:
    # the listing first probes the heads of the partition; its size decides which code answers, so
    # every case runs with a random probe size: 0 (access paths only), tiny (the probe often gives
    # up mid-page) or the real one
    monkeypatch.setattr(store_module, "_PROBE_MAX", r.choice([0, 1, 2, 3, 5, 256]))
    action = r.choice(["read", "read", "update", "delete", "create"])
    order = r.choice([None, "name", "n", "score", "flag"])
    descending = r.random() < 0.5
    limit = r.choice([1, 2, 3, 5, 8, 50])
    where = r.choice([None, None, None, {"n": r.choice([None, 1, 2])}, {"name": r.choice(NAMES)}, {"flag": True}])
    expected = [
        (row.tenant_id, row.id)
        for row in sorted(
            (
                row
                for row in rows
                if oracle.may(action, row) and all(row.data[k] == v for k, v in (where or {}).items())
            ),
            key=lambda row: sort_key(order, row.tenant_id, row.id, row.data),
            reverse=descending,
        )
    ]
    got: list[tuple[str, str]] = []
    cursor = None
    for _ in range(len(rows) + 2):
        page = await store.list(
            where=where, order_by=order, descending=descending, limit=limit, cursor=cursor, action=action
        )
        if len(page.data) > limit or (page.has_more and len(page.data) < limit):
            return f"short or long page: {len(page.data)} rows, limit {limit}, has_more {page.has_more}"
        got.extend((row.tenant_id, row.id) for row in page.data)
        if not page.has_more:
            if page.next_cursor is not None:
                return "next_cursor without has_more"
            break
        cursor = page.next_cursor
    if got != expected:
        return f"list({action=}, {order=}, {descending=}, {limit=}, {where=}): got {got}, expected {expected}"
    return None


async def check_get(store, oracle: Oracle, rows: list[StoredRow], id: str) -> str | None:
    row = await store.get(id)
    expected = oracle.addressed(rows, id)
    got = None if row is None else (row.tenant_id, row.id)
    want = None if expected is None else (expected.tenant_id, expected.id)
    if got != want:
        return f"get({id!r}): got {got}, expected {want}"
    if row is not None and (row.owner_principal != expected.owner or dict(row.data) != expected.data):
        return f"get({id!r}): wrong content {row}"
    return None


class _Rollback(Exception):
    pass


async def check_changes(
    store, oracle: Oracle, rows: list[StoredRow], r: random.Random, identity: Identity
) -> list[str]:
    """update_where, delete_where, update and delete by id, each inside a rolled-back transaction."""
    problems = []
    where = r.choice([{}, {"n": r.choice([None, 1, 2])}, {"flag": False}])
    matching = [row for row in rows if all(row.data[k] == v for k, v in where.items())]
    marker = r.randint(1000, 10**9)
    for action in ("update", "delete"):
        expected = {(row.tenant_id, row.id) for row in matching if oracle.may(action, row)}
        try:
            async with store.transaction():
                with acting_as(identity):
                    if action == "update":
                        count = await store.update_where(where, {"n": marker})
                    else:
                        count = await store.delete_where(where)
                with system_context("differential check"):
                    after = await all_rows(store)
                if action == "update":
                    touched = {key for key, row in after.items() if row.data["n"] == marker}
                    bumped = {key for key, row in after.items() if row.revision == 2}
                    if bumped != touched:
                        problems.append(f"update_where bumped {bumped} but changed {touched}")
                else:
                    touched = {(row.tenant_id, row.id) for row in rows} - set(after)
                if touched != expected or count != len(expected):
                    problems.append(
                        f"{action}_where({where}): touched {sorted(touched)} ({count}), expected {sorted(expected)}"
                    )
                raise _Rollback
        except _Rollback:
            pass
    id = r.choice([row.id for row in rows] + IDS)
    target = oracle.addressed(rows, id)
    for action in ("update", "delete"):
        if target is None:
            want = "not found"
        else:
            want = "done" if oracle.allowed(action, target) else "denied"
        try:
            async with store.transaction():
                with acting_as(identity):
                    try:
                        if action == "update":
                            changed = await store.update(id, {"score": 9.5})
                            got = (
                                "done"
                                if (changed.tenant_id, changed.id) == (target.tenant_id, target.id)
                                else "wrong row"
                            )
                        else:
                            got = "done" if await store.delete(id) else "not found"
                    except RowNotFound:
                        got = "not found"
                    except AccessDenied:
                        got = "denied"
                if got != want:
                    problems.append(f"{action}({id!r}): {got}, expected {want}")
                raise _Rollback
        except _Rollback:
            pass
    return problems


async def all_rows(store) -> dict:
    out = {}
    cursor = None
    while True:
        page = await store.list(limit=500, cursor=cursor)
        out.update({(row.tenant_id, row.id): row for row in page.data})
        if not page.has_more:
            return out
        cursor = page.next_cursor


async def test_store_matches_ogx_is_action_allowed(backend, dialect, monkeypatch):
    r = random.Random(f"differential-{dialect}")
    cases: Counter[str] = Counter()
    problems: list[str] = []
    visible_sizes = []
    for dataset in range(int(__import__("os").environ.get("DIFF_DATASETS", "4"))):
        rows = random_rows(r, 45)
        spec = CollectionSpec(f"{COLLECTION}{dataset}", SPEC.fields)
        loader = await backend.open_store(spec, Policy.default())
        await load(loader, rows)
        for _ in range(55):
            rules = random_policy(r)
            # the resource type must follow the collection's name: rewrite the generated scopes
            rules = [_retarget(rule, spec.name) for rule in rules]
            store = await backend.open_store(spec, Policy.parse(rules))
            for _ in range(6):
                identity = random_identity(r)
                oracle = Oracle(spec.name, rules, identity)
                visible_sizes.append(sum(oracle.allowed("read", row) for row in rows))
                with acting_as(identity):
                    for _ in range(2):
                        if (problem := await check_list(store, oracle, rows, r, monkeypatch)) is not None:
                            problems.append(f"{rules} {identity}: {problem}")
                        cases["list"] += 1
                    for id in r.sample(IDS, 3):
                        if (problem := await check_get(store, oracle, rows, id)) is not None:
                            problems.append(f"{rules} {identity}: {problem}")
                        cases["get"] += 1
                if r.random() < 0.3:
                    problems.extend(
                        f"{rules} {identity}: {p}" for p in await check_changes(store, oracle, rows, r, identity)
                    )
                    cases["update_where/delete_where/update/delete"] += 4
    total = sum(cases.values())
    print(f"{dialect}: {total} cases {dict(cases)}, {len(problems)} mismatches")
    assert not problems, f"{len(problems)} mismatches of {total}; first: {problems[:3]}"
    assert total >= 5000
    # the generator must produce callers who see nothing, some rows and many rows
    assert min(visible_sizes) == 0 and max(visible_sizes) > 20 and sum(1 for v in visible_sizes if 0 < v < 20) > 100


def _retarget(rule: dict, collection: str) -> dict:
    scope = dict(rule.get("permit") or rule.get("forbid"))
    if "resource" in scope:
        scope["resource"] = scope["resource"].replace(f"::{COLLECTION}", f"::{collection}")
    return {**rule, ("permit" if "permit" in rule else "forbid"): scope}
