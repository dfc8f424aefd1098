"""The one place a policy decision (``ogx_tenancy.policy.Expr``) becomes SQL, for both dialects.

``Policy.row_filter`` answers "may the actor do X to this row?" as an expression over the row's id,
owner and owner attributes. Here each atom becomes a predicate on the rows table:

* ``OwnerIs(p)`` -> ``owner_principal IS NOT NULL AND owner_principal = p`` (never SQL NULL, so a
  ``NOT`` around it keeps Python's two-valued meaning);
* ``Unowned()`` -> ``owner_principal IS NULL`` (the store writes NULL for unowned; a CHECK forbids
  ``''``, and the layout upgrade rewrote legacy ``''`` owners to NULL);
* ``OwnerShares(category, values)`` -> ``EXISTS`` a grants row ``(tenant_id, row_id, category, value)``
  with ``value IN values`` (grants exist for owned rows only);
* ``IdEquals(i)`` -> ``id = i``; ``IdPrefix(p)`` -> ``id >= p AND id < successor(p)`` — an exact,
  index-served range (byte-order collation on both dialects; SQLite's ``LIKE`` is case-insensitive,
  so it would be wrong there, and a range needs no escaping at all);
* ``IdRegex`` is not pushed down: stores filter with ``expr.relax(PUSHDOWN)`` and finish with
  ``expr.evaluate`` in Python.

``cover`` finds index-served access paths that together contain every row an expression can accept;
the listing query unions one ordered, limited scan per path (see ``listing``), so its cost follows
the rows the caller can see, not the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from ogx_tenancy.policy import (
    FALSE,
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


class Compiler:
    """Turns ``Expr`` into SQLAlchemy conditions over one collection's tables."""

    def __init__(self, tables: CollectionTables):
        self.rows = tables.rows
        self.grants = tables.grants

    def condition(self, expr: Expr) -> sa.ColumnElement[bool]:
        """``expr`` as a WHERE condition on the rows table. ``expr`` must hold pushable atoms only."""
        rows = self.rows
        match expr:
            case Const(value=value):
                return sa.true() if value else sa.false()
            case OwnerIs(principal=principal):
                if not principal or not storable(principal):
                    return sa.false()
                return sa.and_(rows.c.owner_principal.is_not(None), rows.c.owner_principal == principal)
            case Unowned():
                return rows.c.owner_principal.is_(None)
            case OwnerShares(category=category, values=values):
                wanted = [v for v in values if storable(v)]
                if not wanted or not storable(category):
                    return sa.false()
                g = self.grants
                return sa.exists().where(
                    g.c.tenant_id == rows.c.tenant_id,
                    g.c.row_id == rows.c.id,
                    g.c.category == category,
                    g.c.value.in_(wanted),
                )
            case IdEquals(identifier=identifier):
                return rows.c.id == identifier if storable(identifier) else sa.false()
            case IdPrefix(prefix=prefix):
                return self._id_range(prefix)
            case Not(part=part):
                return sa.not_(self.condition(part))
            case And(parts=parts):
                return sa.and_(*(self.condition(p) for p in parts))
            case Or(parts=parts):
                return sa.or_(*(self.condition(p) for p in parts))
            case IdRegex():
                raise ValueError("IdRegex is not pushed down: compile expr.relax(PUSHDOWN) instead")
        raise TypeError(f"not a policy expression: {type(expr).__name__}")

    def _id_range(self, prefix: str) -> sa.ColumnElement[bool]:
        if not storable(prefix):
            return sa.false()
        if not prefix:
            return sa.true()
        upper = prefix_upper_bound(prefix)
        low = self.rows.c.id >= prefix
        return low if upper is None else sa.and_(low, self.rows.c.id < upper)

    # -- access paths -------------------------------------------------------------------------

    def access_paths(self, expr: Expr) -> list[AccessPath] | None:
        """Index-served paths that together contain every row ``expr`` accepts (None: no such set;
        scan the tenant). An empty list means ``expr`` accepts nothing."""
        atoms = cover(expr)
        if atoms is None:
            return None
        paths: list[AccessPath] = []
        for principal in sorted({a.principal for a in atoms if isinstance(a, OwnerIs)}):
            if principal and storable(principal):
                paths.append(AccessPath("owner", owner=principal))
        if any(isinstance(a, Unowned) for a in atoms):
            paths.append(AccessPath("unowned"))
        shares: dict[str, set[str]] = {}
        for a in atoms:
            if isinstance(a, OwnerShares) and storable(a.category):
                shares.setdefault(a.category, set()).update(v for v in a.values if storable(v))
        shares = {c: v for c, v in shares.items() if v}
        if shares:
            paths.append(AccessPath("grants", shares=tuple(sorted((c, tuple(sorted(v))) for c, v in shares.items()))))
        ids = sorted({a.identifier for a in atoms if isinstance(a, IdEquals) and storable(a.identifier)})
        if ids:
            paths.append(AccessPath("ids", ids=tuple(ids)))
        for prefix in sorted({a.prefix for a in atoms if isinstance(a, IdPrefix)}):
            paths.append(AccessPath("prefix", prefix=prefix))
        return paths

    def path_condition(self, path: AccessPath, tenant_id: str | None) -> sa.ColumnElement[bool]:
        """The index-served condition selecting ``path``'s rows in ``tenant_id`` (None: any tenant)."""
        rows = self.rows
        match path.kind:
            case "owner":
                return rows.c.owner_principal == path.owner
            case "unowned":
                return rows.c.owner_principal.is_(None)
            case "grants":
                g = self.grants
                matches = sa.or_(*(sa.and_(g.c.category == c, g.c.value.in_(values)) for c, values in path.shares))
                if tenant_id is None:
                    granted = sa.select(g.c.tenant_id, g.c.row_id).where(matches)
                    return sa.tuple_(rows.c.tenant_id, rows.c.id).in_(granted)
                return rows.c.id.in_(sa.select(g.c.row_id).where(g.c.tenant_id == tenant_id, matches))
            case "ids":
                return rows.c.id.in_(path.ids)
            case "prefix":
                return self._id_range(path.prefix or "")
        raise AssertionError(path.kind)


@dataclass(frozen=True, slots=True)
class AccessPath:
    """One index-served way into the rows: by owner, unowned, by grant, by id or id prefix."""

    kind: str
    owner: str | None = None
    shares: tuple[tuple[str, tuple[str, ...]], ...] = ()
    ids: tuple[str, ...] = ()
    prefix: str | None = None


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
