"""The one place a policy decision (``ogx_tenancy.policy.Expr``) becomes SQL, for both dialects.

``Policy.row_filter`` answers "may the actor do X to this row?" as an expression over the row's id,
owner and owner attributes. Here each atom becomes a predicate on the rows table:

* ``OwnerIs(p)`` -> ``owner_principal IS NOT NULL AND owner_principal = p`` (never SQL NULL, so a
  ``NOT`` around it keeps Python's two-valued meaning);
* ``Unowned()`` -> ``owner_principal IS NULL`` (the store writes NULL for unowned; a CHECK forbids
  ``''``, and the layout upgrade rewrote legacy ``''`` owners to NULL);
* ``OwnerShares(category, values)`` -> ``EXISTS`` a grants row ``(tenant_id, row_id, category, value)``
  with ``value IN values`` (grants exist for owned rows only; triggers keep them in step); on
  PostgreSQL, where rows are already read and only tested (``in_row``), the row's jsonb itself
  (``access_attributes -> category ?| values``) — the same answer without an index probe per row;
* ``IdEquals(i)`` -> ``id = i``; ``IdPrefix(p)`` -> ``id >= p AND id < successor(p)`` — an exact,
  index-served range (byte-order collation on both dialects; SQLite's ``LIKE`` is case-insensitive,
  so it would be wrong there, and a range needs no escaping at all);
* ``IdRegex`` is not pushed down: stores filter with ``expr.relax(PUSHDOWN)`` and finish with
  ``expr.evaluate`` in Python.

Statements are built once per *shape* and reused: ``shape(expr)`` is the expression with its
literals taken out, ``bind_values(expr, name)`` the literals, named by their position in the tree
(``f_0_1`` ...), and ``Compiler.condition(shape, name)`` the SQL with a bind parameter at each of
those names. A missing or extra value is a loud error, never a silently wrong filter.

``access_paths`` finds index-served ways into the rows that together contain every row an
expression can accept; the listing query unions one ordered, limited scan per path (see
``listing``), so its cost follows the rows the caller can see, not the table.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ogx_tenancy.policy import (
    FALSE,
    TRUE,
    And,
    Const,
    Expr,
    IdEquals,
    IdPrefix,
    IdRegex,
    Not,
    Or,
    OwnerIs,
    OwnerShares,
    Unowned,
    conjoin,
    disjoin,
    negate,
)

from .schema import CollectionTables

# The atoms evaluated in the database (StoreCapabilities.pushdown names them).
PUSHDOWN: tuple[type[Expr], ...] = (OwnerIs, Unowned, OwnerShares, IdEquals, IdPrefix)


def storable(text: str) -> bool:
    """Can ``text`` be stored in (and so ever equal) a text column on both dialects?

    PostgreSQL text cannot hold NUL and neither database holds lone surrogates; a literal that
    cannot be stored matches no row, and binding it would be a driver error.
    """
    if "\x00" in text:
        return False
    if text.isascii():  # the common case: no surrogates possible
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be stored: skip to the next real character
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def prepare(expr: Expr) -> Expr:
    """``expr`` with atoms that can match no stored row replaced by FALSE (and ``IdPrefix('')`` by
    TRUE), OwnerShares values de-duplicated and sorted — so equal decisions get equal shapes."""
    match expr:
        case OwnerIs(principal=principal):
            return expr if principal and storable(principal) else FALSE
        case OwnerShares(category=category, values=values):
            kept = tuple(sorted({v for v in values if storable(v)}))
            return OwnerShares(category, kept) if kept and storable(category) else FALSE
        case IdEquals(identifier=identifier):
            return expr if storable(identifier) else FALSE
        case IdPrefix(prefix=prefix):
            if not storable(prefix):
                return FALSE
            return TRUE if not prefix else expr
        case Not(part=part):
            return negate(prepare(part))
        case And(parts=parts):
            return conjoin(prepare(p) for p in parts)
        case Or(parts=parts):
            return disjoin(prepare(p) for p in parts)
    return expr


def shape(expr: Expr) -> Hashable:
    """The structure of a prepared, pushable ``expr`` without its literals."""
    match expr:
        case Const(value=value):
            return ("const", value)
        case OwnerIs():
            return ("owner",)
        case Unowned():
            return ("unowned",)
        case OwnerShares(values=values):
            return ("shares", len(values))
        case IdEquals():
            return ("id",)
        case IdPrefix(prefix=prefix):
            return ("prefix", prefix_upper_bound(prefix) is not None)
        case Not(part=part):
            return ("not", shape(part))
        case And(parts=parts):
            return ("and", *(shape(p) for p in parts))
        case Or(parts=parts):
            return ("or", *(shape(p) for p in parts))
        case IdRegex():
            raise ValueError("IdRegex is not pushed down: compile expr.relax(PUSHDOWN) instead")
    raise TypeError(f"not a policy expression: {type(expr).__name__}")


def bind_values(expr: Expr, name: str, out: dict[str, Any]) -> dict[str, Any]:
    """The literals of ``expr`` under the names ``Compiler.condition(shape(expr), name)`` binds."""
    match expr:
        case OwnerIs(principal=principal):
            out[name] = principal
        case OwnerShares(category=category, values=values):
            out[f"{name}_c"] = category
            for j, value in enumerate(values):
                out[f"{name}_v{j}"] = value
        case IdEquals(identifier=identifier):
            out[name] = identifier
        case IdPrefix(prefix=prefix):
            out[f"{name}_lo"] = prefix
            upper = prefix_upper_bound(prefix)
            if upper is not None:
                out[f"{name}_hi"] = upper
        case Not(part=part):
            bind_values(part, f"{name}_0", out)
        case And(parts=parts) | Or(parts=parts):
            for i, part in enumerate(parts):
                bind_values(part, f"{name}_{i}", out)
    return out


class Compiler:
    """Turns expression shapes and access paths into SQLAlchemy conditions over one collection."""

    def __init__(self, tables: CollectionTables):
        self.rows = tables.rows
        self.grants = tables.grants
        self.dialect = tables.dialect

    def _bind(self, name: str, column: sa.Column) -> sa.BindParameter:
        return sa.bindparam(name, type_=column.type)

    def _binds(self, name: str, count: int, column: sa.Column) -> list[sa.BindParameter]:
        """``count`` parameters for an IN list: its length is part of the shape, so the statement
        needs no per-call expansion (SQLAlchemy's "expanding" parameters cost a pass over the SQL)."""
        return [self._bind(f"{name}{j}", column) for j in range(count)]

    def condition(self, key: Hashable, name: str, *, in_row: bool = False) -> sa.ColumnElement[bool]:
        """The WHERE condition of shape ``key``, its literals bound under ``name`` (see ``bind_values``).

        ``in_row``: the condition is tested on rows already read (the listing's head probe), not
        used to find them — on PostgreSQL, ``OwnerShares`` then reads the row's own jsonb instead
        of probing the grants index once per row.
        """
        rows, kind = self.rows, key[0]
        match kind:
            case "const":
                return sa.true() if key[1] else sa.false()
            case "owner":
                owner = rows.c.owner_principal
                return sa.and_(owner.is_not(None), owner == self._bind(name, owner))
            case "unowned":
                return rows.c.owner_principal.is_(None)
            case "shares" if in_row and self.dialect == "postgresql":
                return self._shares_in_row(name, key[1])
            case "shares":
                g = self.grants
                granted = sa.select(sa.literal_column("1")).where(
                    g.c.tenant_id == rows.c.tenant_id,
                    g.c.row_id == rows.c.id,
                    g.c.category == self._bind(f"{name}_c", g.c.category),
                    g.c.value.in_(self._binds(f"{name}_v", key[1], g.c.value)),
                )
                if self.dialect == "postgresql":
                    # OFFSET 0 keeps PostgreSQL from turning the EXISTS into a hashed subplan, which
                    # reads every grant of the category (a scan of the table) instead of one index
                    # probe per candidate row
                    granted = granted.offset(0)
                return sa.exists(granted)
            case "id":
                return rows.c.id == self._bind(name, rows.c.id)
            case "prefix":
                return self._id_range(name, bounded=key[1])
            case "not":
                return sa.not_(self.condition(key[1], f"{name}_0", in_row=in_row))
            case "and":
                return sa.and_(*(self.condition(k, f"{name}_{i}", in_row=in_row) for i, k in enumerate(key[1:])))
            case "or":
                return sa.or_(*(self.condition(k, f"{name}_{i}", in_row=in_row) for i, k in enumerate(key[1:])))
        raise AssertionError(key)

    def _shares_in_row(self, name: str, count: int) -> sa.ColumnElement[bool]:
        """``OwnerShares`` on the row's own jsonb, true exactly when the grants trigger would have
        written a matching grant (schema._grants_select): the row is owned and the category holds
        an array with one of the values as a string element. Never NULL (a NOT stays two-valued)."""
        rows = self.rows
        category = self._bind(f"{name}_c", self.grants.c.category)
        values = postgresql.array(self._binds(f"{name}_v", count, self.grants.c.value))
        held = rows.c.access_attributes.op("->", return_type=postgresql.JSONB)(category)
        shares = sa.and_(
            rows.c.owner_principal.is_not(None),
            sa.func.jsonb_typeof(held) == sa.literal_column("'array'"),
            held.op("?|", return_type=sa.Boolean)(values),
        )
        return sa.func.coalesce(shares, sa.false())

    def _id_range(self, name: str, *, bounded: bool) -> sa.ColumnElement[bool]:
        low = self.rows.c.id >= self._bind(f"{name}_lo", self.rows.c.id)
        return sa.and_(low, self.rows.c.id < self._bind(f"{name}_hi", self.rows.c.id)) if bounded else low

    def path_condition(self, path: Hashable, name: str, tenant: sa.ColumnElement | None) -> sa.ColumnElement[bool]:
        """The index-served condition selecting the rows of access path shape ``path``
        (``AccessPath.shape()``) in ``tenant`` (None: any tenant); values bound under ``name``."""
        rows = self.rows
        kind, count, bounded = path  # type: ignore[misc]
        match kind:
            case "owner":
                return rows.c.owner_principal == self._bind(name, rows.c.owner_principal)
            case "unowned":
                return rows.c.owner_principal.is_(None)
            case "grants":
                g = self.grants
                category, values = self._bind(f"{name}_c", g.c.category), self._binds(f"{name}_v", count, g.c.value)
                if tenant is None:
                    granted = sa.select(g.c.tenant_id, g.c.row_id).where(
                        g.c.category == category, g.c.value.in_(values)
                    )
                    return sa.tuple_(rows.c.tenant_id, rows.c.id).in_(granted)
                ids = sa.select(g.c.row_id).where(
                    g.c.tenant_id == tenant, g.c.category == category, g.c.value.in_(values)
                )
                if self.dialect == "postgresql":
                    # id = ANY(ARRAY(...)): the grants are read first (an init plan), then the rows by
                    # primary key; as a join, small tables got a hash join over a scan of the tenant
                    return sa.and_(
                        rows.c.tenant_id == tenant, rows.c.id == sa.any_(sa.func.array(ids.scalar_subquery()))
                    )
                # (tenant_id, id) IN (...) with no other tenant condition: SQLite then reaches the rows
                # by primary key from the grants found instead of walking the tenant's index
                return sa.tuple_(rows.c.tenant_id, rows.c.id).in_(
                    sa.select(g.c.tenant_id, g.c.row_id).where(
                        g.c.tenant_id == tenant, g.c.category == category, g.c.value.in_(values)
                    )
                )
            case "ids":
                return rows.c.id.in_(self._binds(name, count, rows.c.id))
            case "prefix":
                return self._id_range(name, bounded=bounded)
        raise AssertionError(kind)


@dataclass(frozen=True, slots=True)
class AccessPath:
    """One index-served way into the rows: by owner, unowned, by grant, by id or by id prefix."""

    kind: str
    owner: str | None = None
    shares: tuple[tuple[str, tuple[str, ...]], ...] = ()
    ids: tuple[str, ...] = ()
    prefix: str | None = None

    @property
    def bounded(self) -> bool:
        return self.prefix is not None and prefix_upper_bound(self.prefix) is not None

    def shape(self) -> Hashable:
        """(kind, how many values its IN list binds, whether an id range has an upper bound)."""
        count = len(self.shares[0][1]) if self.kind == "grants" else len(self.ids)
        return (self.kind, count, self.bounded)

    def bind_values(self, name: str, out: dict[str, Any]) -> None:
        match self.kind:
            case "owner":
                out[name] = self.owner
            case "grants":
                ((category, values),) = self.shares
                out[f"{name}_c"] = category
                for j, value in enumerate(values):
                    out[f"{name}_v{j}"] = value
            case "ids":
                for j, identifier in enumerate(self.ids):
                    out[f"{name}{j}"] = identifier
            case "prefix":
                out[f"{name}_lo"] = self.prefix
                if self.bounded:
                    out[f"{name}_hi"] = prefix_upper_bound(self.prefix or "")


def access_paths(expr: Expr) -> list[AccessPath] | None:
    """Index-served paths that together contain every row the prepared ``expr`` accepts.

    None when no such set exists (scan the tenant); an empty list when ``expr`` accepts nothing.
    """
    atoms = cover(expr)
    if atoms is None:
        return None
    paths = [AccessPath("owner", owner=p) for p in sorted({a.principal for a in atoms if isinstance(a, OwnerIs)})]
    if any(isinstance(a, Unowned) for a in atoms):
        paths.append(AccessPath("unowned"))
    shares: dict[str, set[str]] = {}
    for a in atoms:
        if isinstance(a, OwnerShares):
            shares.setdefault(a.category, set()).update(a.values)
    # one path per category: each is a single index range of the grants table, which both planners
    # turn into primary-key lookups of the rows (an OR of categories made PostgreSQL scan the table)
    paths += [AccessPath("grants", shares=((c, tuple(sorted(v))),)) for c, v in sorted(shares.items())]
    ids = sorted({a.identifier for a in atoms if isinstance(a, IdEquals)})
    if ids:
        paths.append(AccessPath("ids", ids=tuple(ids)))
    paths += [AccessPath("prefix", prefix=p) for p in sorted({a.prefix for a in atoms if isinstance(a, IdPrefix)})]
    return paths


def specialize(expr: Expr, path: AccessPath) -> Expr:
    """``expr`` for the rows of ``path`` only: what the path guarantees about the owner replaced by
    constants (on the owner path of ``p``, ``OwnerIs(p)`` is TRUE and ``Unowned`` FALSE; on the
    unowned path, ``Unowned`` is TRUE and ``OwnerIs``/``OwnerShares`` FALSE; on the grants path, a
    disjunction holding every one of the path's ``OwnerShares`` atoms is TRUE). A branch's filter
    then often reduces to TRUE, or to FALSE and the branch is dropped."""
    if path.kind == "grants":
        granted = {OwnerShares(category, values) for category, values in path.shares}
        if (expr in granted and len(granted) == 1) or (isinstance(expr, Or) and granted <= set(expr.parts)):
            return TRUE
    match expr:
        case OwnerIs(principal=principal) if path.kind in ("owner", "unowned"):
            return TRUE if path.kind == "owner" and principal == path.owner else FALSE
        case Unowned() if path.kind in ("owner", "unowned"):
            return TRUE if path.kind == "unowned" else FALSE
        case OwnerShares() if path.kind == "unowned":
            return FALSE
        case Not(part=part):
            return negate(specialize(part, path))
        case And(parts=parts):
            return conjoin(specialize(p, path) for p in parts)
        case Or(parts=parts):
            return disjoin(specialize(p, path) for p in parts)
    return expr


_PATH_COST = {IdEquals: 1, OwnerIs: 2, IdPrefix: 3, OwnerShares: 4, Unowned: 5}


def cover(expr: Expr) -> frozenset[Expr] | None:
    """Atoms whose disjunction every row accepted by ``expr`` satisfies (None when there is none).

    ``Or`` needs a cover of each part; ``And`` needs one of any part (the cheapest is taken);
    ``Not``, ``TRUE`` and ``IdRegex`` bound nothing.
    """
    if isinstance(expr, PUSHDOWN):
        return frozenset((expr,))
    if expr == FALSE:
        return frozenset()
    if isinstance(expr, Or):
        found: set[Expr] = set()
        for part in expr.parts:
            sub = cover(part)
            if sub is None:
                return None
            found |= sub
        return frozenset(found)
    if isinstance(expr, And):
        options = [sub for part in expr.parts if (sub := cover(part)) is not None]
        if not options:
            return None
        return min(options, key=_cost)
    return None


def _cost(atoms: Iterable[Expr]) -> int:
    return sum(_PATH_COST[type(a)] for a in atoms)
