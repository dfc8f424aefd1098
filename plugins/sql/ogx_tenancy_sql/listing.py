"""The listing query: keyset pagination over the union of index-served access paths.

Rows are ordered by ``(order column, id, tenant_id)`` — ascending, or all three descending; NULL
order values sort as the smallest value on both dialects (first ascending, last descending). A
cursor is the key of the last row returned; the next page is the rows strictly after it, so pages
stay exact under concurrent inserts and deletes (nothing is skipped or repeated, a row inserted
behind the cursor simply appears on no later page).

One *branch* per (tenant of the caller's partition, access path, key segment) selects the keys of
at most ``limit`` rows in order through an index whose leading columns are equalities:

* tenant: ``tenant_id = X`` — each partition tenant separately, so the scan is ordered;
* access path (``compile.Compiler.access_paths``): ``owner_principal = p``, ``owner_principal IS
  NULL``, ``id IN (grants of the caller's attribute values)``, ``id IN (...)``, an id range — or,
  when the policy bounds nothing, the whole tenant;
* key segment: the part of the order after the cursor, split where NULL order values begin or end
  so each part is one index range.

Every branch also carries the full pushed-down policy filter and the caller's ``where``; their
union (duplicates removed) is ordered and cut to ``limit``, then joined back to the rows. A single
branch is queried directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .compile import AccessPath, Compiler
from .schema import CollectionTables

Key = tuple[Any, str, str]  # (order value, id, tenant_id); the order value is the id when ordering by id


@dataclass(frozen=True)
class Ordering:
    """How a listing is ordered: by ``column`` (a field, or ``id``), then id, then tenant."""

    column: str
    descending: bool

    @property
    def by_id(self) -> bool:
        return self.column == "id"


class ListingQuery:
    """Builds the statements of one listing (fixed filter, order and partition) page by page."""

    def __init__(
        self,
        tables: CollectionTables,
        compiler: Compiler,
        columns: Sequence[sa.ColumnElement],
        ordering: Ordering,
        tenants: tuple[str, ...] | None,
        conditions: Sequence[sa.ColumnElement[bool]],
        paths: list[AccessPath] | None,
    ):
        self.rows = tables.rows
        self.compiler = compiler
        self.columns = list(columns)
        self.ordering = ordering
        self.tenants = tenants
        self.conditions = list(conditions)
        self.paths = paths

    def statement(self, after: Key | None, limit: int) -> sa.Select:
        """At most ``limit`` full rows after ``after`` (None: from the start), in order."""
        branches = [
            self._branch(tenant, path, segment, limit)
            for tenant in (self.tenants if self.tenants is not None else (None,))
            for path in (self.paths if self.paths is not None else (None,))
            for segment in self._segments(after, tenant)
        ]
        if len(branches) == 1:
            return branches[0].with_only_columns(*self.columns)
        keys = [self.rows.c.tenant_id, self.rows.c.id] + (
            [] if self.ordering.by_id else [self.rows.c[self.ordering.column]]
        )
        members = [b.with_only_columns(*keys).subquery() for b in branches]
        union = sa.union(*(sa.select(m) for m in members)).subquery("hits")
        top = sa.select(union).order_by(*self._order_by(union.c)).limit(limit).subquery("page")
        joined = self.rows.join(top, sa.and_(self.rows.c.tenant_id == top.c.tenant_id, self.rows.c.id == top.c.id))
        return sa.select(*self.columns).select_from(joined).order_by(*self._order_by(top.c))

    def _branch(
        self, tenant: str | None, path: AccessPath | None, segment: sa.ColumnElement[bool], limit: int
    ) -> sa.Select:
        rows = self.rows
        where = list(self.conditions)
        if tenant is not None:
            where.insert(0, rows.c.tenant_id == tenant)
        if path is not None:
            where.append(self.compiler.path_condition(path, tenant))
        where.append(segment)
        return sa.select(*self.columns).where(*where).order_by(*self._order_by(rows.c)).limit(limit)

    def _order_by(self, c: Any) -> list[sa.ColumnElement]:
        names = ["id", "tenant_id"] if self.ordering.by_id else [self.ordering.column, "id", "tenant_id"]
        out = []
        for i, name in enumerate(names):
            column = c[name]
            if self.ordering.descending:
                out.append(column.desc().nulls_last() if i == 0 and not self.ordering.by_id else column.desc())
            else:
                out.append(column.asc().nulls_first() if i == 0 and not self.ordering.by_id else column.asc())
        return out

    # -- keyset ---------------------------------------------------------------------------------

    def _segments(self, after: Key | None, tenant: str | None) -> list[sa.ColumnElement[bool]]:
        """Index ranges (within ``tenant``) covering every key after ``after``, in order."""
        if after is None:
            return [sa.true()]
        value, row_id, row_tenant = after
        rows = self.rows
        desc = self.ordering.descending
        if self.ordering.by_id:
            return [self._after(rows.c.id, row_id, tenant, row_tenant)]
        column = rows.c[self.ordering.column]
        if value is None:
            within = sa.and_(column.is_(None), self._after(rows.c.id, row_id, tenant, row_tenant))
            # ascending, the non-NULL values follow the NULLs; descending, NULLs are last
            return [within] if desc else [within, column.is_not(None)]
        within = self._after_pair(column, value, row_id, tenant, row_tenant)
        return [within, column.is_(None)] if desc else [within]

    def _after(
        self, id_column: sa.ColumnElement, row_id: str, tenant: str | None, row_tenant: str
    ) -> sa.ColumnElement[bool]:
        """``id`` after ``row_id`` (ties broken by tenant)."""
        desc = self.ordering.descending
        if tenant is None:
            pair = sa.tuple_(id_column, self.rows.c.tenant_id)
            return pair < sa.tuple_(row_id, row_tenant) if desc else pair > sa.tuple_(row_id, row_tenant)
        # with the tenant fixed, an equal id comes after the cursor exactly when the tenant does
        inclusive = tenant < row_tenant if desc else tenant > row_tenant
        if desc:
            return id_column <= row_id if inclusive else id_column < row_id
        return id_column >= row_id if inclusive else id_column > row_id

    def _after_pair(
        self, column: sa.ColumnElement, value: Any, row_id: str, tenant: str | None, row_tenant: str
    ) -> sa.ColumnElement[bool]:
        """``(column, id)`` after ``(value, row_id)`` for non-NULL ``column`` values."""
        desc = self.ordering.descending
        if tenant is None:
            triple = sa.tuple_(column, self.rows.c.id, self.rows.c.tenant_id)
            bound = sa.tuple_(value, row_id, row_tenant)
            return triple < bound if desc else triple > bound
        pair = sa.tuple_(column, self.rows.c.id)
        bound = sa.tuple_(value, row_id)
        inclusive = tenant < row_tenant if desc else tenant > row_tenant
        if desc:
            return pair <= bound if inclusive else pair < bound
        return pair >= bound if inclusive else pair > bound
