"""The listing query: keyset pagination over the union of index-served access paths.

Rows are ordered by ``(order column, id, tenant_id)`` — ascending, or all three descending; NULL
order values sort as the smallest value on both dialects (first ascending, last descending). A
cursor is the key of the last row returned; the next page is the rows strictly after it, so pages
stay exact under concurrent inserts and deletes (nothing is skipped or repeated; a row inserted
behind the cursor simply appears on no later page).

One *branch* per (tenant of the caller's partition, access path, key segment) selects at most
``limit`` rows in order through an index whose leading columns are equalities:

* tenant: ``tenant_id = X`` — each partition tenant separately, so the scan is ordered;
* access path (``compile.access_paths``): ``owner_principal = p``, ``owner_principal IS NULL``,
  ``id IN (grants of the caller's attribute values)``, ``id IN (...)``, an id range — or, when the
  policy bounds nothing, the whole tenant;
* key segment: the part of the order after the cursor, split where NULL order values begin or end
  so each part is one index range.

Every branch also carries the pushed-down policy filter (specialised to its path) and the caller's
``where``; their union (a row found twice kept once) is ordered and cut to ``limit``. A single branch
is queried directly.

Statements depend only on a ``ListingShape`` and are cached per store; every value (tenants,
principal, attribute values, filter values, cursor, limit) is a bind parameter.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

from ogx_tenancy.policy import FALSE, Expr

from .compile import AccessPath, Compiler, access_paths, bind_values, specialize
from .compile import shape as expr_shape

Key = tuple[Any, str, str]  # (order value, id, tenant_id); the order value is the id when ordering by id
_CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class ListingShape:
    """Everything a listing statement's SQL depends on (values are bound separately)."""

    order: str  # a field, or "id"
    descending: bool
    tenants: int | None  # how many partition tenants (branches are per tenant); None = every tenant
    paths: tuple[Hashable, ...] | None  # AccessPath shapes; None = scan the tenant
    filters: tuple[Hashable, ...]  # compile.shape of the policy filter, per path (one when scanning)
    where: tuple[tuple[str, bool], ...]  # (field, value is None)
    after: str | None  # None (first page), "null" (cursor's order value is NULL) or "value"
    inclusive: tuple[bool, ...]  # per tenant: does a row with the cursor's (value, id) come after it?
    probe: bool = False  # the head probe (see ``ListingStatements``) instead of the listing

    @property
    def by_id(self) -> bool:
        return self.order == "id"


@dataclass(frozen=True, slots=True)
class Access:
    """How a listing reaches its rows: index-served paths, each with the policy filter specialised
    to it — or (``paths`` None) a scan of each tenant with the one filter."""

    paths: tuple[AccessPath, ...] | None
    filters: tuple[Expr, ...]

    @classmethod
    def of(cls, pushed: Expr) -> Access:
        paths = access_paths(pushed)
        if paths is None:
            return cls(None, (pushed,))
        kept = [(p, f) for p in paths if (f := specialize(pushed, p)) != FALSE]
        return cls(tuple(p for p, _ in kept), tuple(f for _, f in kept))

    @property
    def empty(self) -> bool:
        return self.paths == ()


def plan(
    *,
    order: str,
    descending: bool,
    tenants: tuple[str, ...] | None,
    access: Access,
    where: dict[str, Any],
    after: Key | None,
    probe: bool = False,
) -> tuple[ListingShape, dict[str, Any]]:
    """The shape and bind values of one listing statement (the limit is bound as ``lim``).

    With ``probe``, ``access`` must be a scan (no paths): the statement is the head probe.
    """
    values: dict[str, Any] = {}
    for i, condition in enumerate(access.filters):
        bind_values(condition, f"f{i}", values)
    for j, tenant in enumerate(tenants or ()):
        values[f"t{j}"] = tenant
    for i, path in enumerate(access.paths or ()):
        path.bind_values(f"a{i}", values)
    for name, value in where.items():
        if value is not None:
            values[f"w_{name}"] = value
    inclusive: tuple[bool, ...] = ()
    kind = None
    if after is not None:
        value, row_id, row_tenant = after
        kind = "null" if value is None and order != "id" else "value"
        if order != "id" and value is not None:
            values["after_v"] = value
        values["after_id"] = row_id
        values["after_t"] = row_tenant
        # with the tenant fixed in a branch, a row equal to the cursor on (value, id) comes after it
        # exactly when its tenant does
        inclusive = tuple((t < row_tenant) if descending else (t > row_tenant) for t in (tenants or ()))
    shape = ListingShape(
        order=order,
        descending=descending,
        tenants=None if tenants is None else len(tenants),
        paths=None if access.paths is None else tuple(p.shape() for p in access.paths),
        filters=tuple(expr_shape(f) for f in access.filters),
        where=tuple((name, value is None) for name, value in where.items()),
        after=kind,
        inclusive=inclusive,
        probe=probe,
    )
    return shape, values


class ListingStatements:
    """Builds, compiles and caches (per shape) the listing statements of one collection."""

    def __init__(
        self,
        compiler: Compiler,
        columns: Sequence[sa.ColumnElement],
        dialect: str,
        compile: Callable[[sa.Select], SQLCompiler],
    ):
        self.compiler = compiler
        self._compile = compile
        # SQLite's planner, without statistics, would serve the order of a grants/ids/prefix branch
        # by walking the tenant's order index and testing every row; ordering by an expression
        # (coalesce(c, c) = c) makes it start from the path's index and sort what it finds, so the
        # cost follows the rows the path reaches. PostgreSQL plans these well by itself.
        self.steer_order = dialect == "sqlite"
        self.rows = compiler.rows
        self.columns = list(columns)
        self._cache: OrderedDict[ListingShape, SQLCompiler] = OrderedDict()

    def compiled(self, shape: ListingShape) -> SQLCompiler:
        """The statement of ``shape``, compiled for the backend's database (built once per shape)."""
        cached = self._cache.get(shape)
        if cached is not None:
            self._cache.move_to_end(shape)
            return cached
        built = self._compile(self.statement(shape))
        self._cache[shape] = built
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return built

    def statement(self, shape: ListingShape) -> sa.Select:
        """The SQLAlchemy statement of ``shape`` (not cached; ``compiled`` is)."""
        return self._build(shape)

    def _build(self, shape: ListingShape) -> sa.Select:
        if shape.probe:
            return self._build_probe(shape)
        rows = self.rows
        limit = sa.bindparam("lim", type_=sa.Integer())
        common = [
            rows.c[name].is_(None) if is_null else rows.c[name] == sa.bindparam(f"w_{name}", type_=rows.c[name].type)
            for name, is_null in shape.where
        ]
        tenant_slots: list[int | None] = list(range(shape.tenants)) if shape.tenants is not None else [None]
        branches = []
        for j in tenant_slots:
            tenant = None if j is None else sa.bindparam(f"t{j}", type_=rows.c.tenant_id.type)
            path_slots: list[int | None] = list(range(len(shape.paths))) if shape.paths is not None else [None]
            for i in path_slots:
                policy = self.compiler.condition(shape.filters[i or 0], f"f{i or 0}")
                by_expression = (
                    self.steer_order and i is not None and shape.paths[i][0] in ("grants", "ids", "prefix")  # type: ignore[index]
                )
                for segment in self._segments(shape, j):
                    where = [policy, *common]
                    # a grants path states the tenant itself (compile.Compiler.path_condition)
                    pinned_by_path = i is not None and shape.paths[i][0] == "grants"  # type: ignore[index]
                    if tenant is not None and not pinned_by_path:
                        where.insert(0, rows.c.tenant_id == tenant)
                    if i is not None:
                        where.append(self.compiler.path_condition(shape.paths[i], f"a{i}", tenant))  # type: ignore[index]
                    where.append(segment)
                    order = self._order_by(rows.c, shape, by_expression=by_expression)
                    branches.append(sa.select(*self.columns).where(*where).order_by(*order))
        if len(branches) == 1:
            return branches[0].limit(limit)
        # UNION removes a row two branches both found; each branch is cut to the page first
        members = [sa.select(b.limit(limit).subquery()) for b in branches]
        hits = sa.union(*members).subquery("hits")
        return sa.select(*(hits.c[c.name] for c in self.columns)).order_by(*self._order_by(hits.c, shape)).limit(limit)

    def _build_probe(self, shape: ListingShape) -> sa.Select:
        """The first ``lim`` rows of each (tenant, key segment) after the cursor, in order, each with
        ``visible`` (the pushed-down policy filter and the caller's ``where``, evaluated in SQL) and
        ``branch`` (which range it came from). The store keeps the visible ones when every range
        either ran out or already holds a full page of visible rows: then no row beyond the probed
        heads can be on the page."""
        rows = self.rows
        limit = sa.bindparam("lim", type_=sa.Integer())
        # the caller's ``where`` joins the policy in the flag, not in the WHERE clause, so each range
        # reads at most ``lim`` rows whatever the filter
        matches = [
            rows.c[name].is_(None) if is_null else rows.c[name] == sa.bindparam(f"w_{name}", type_=rows.c[name].type)
            for name, is_null in shape.where
        ]
        policy = self.compiler.condition(shape.filters[0], "f0", in_row=True)
        visible = sa.case((sa.and_(policy, *matches), 1), else_=0).label("visible")
        tenant_slots: list[int | None] = list(range(shape.tenants)) if shape.tenants is not None else [None]
        branches = []
        for j in tenant_slots:
            for segment in self._segments(shape, j):
                where = [segment]
                if j is not None:
                    where.insert(0, rows.c.tenant_id == sa.bindparam(f"t{j}", type_=rows.c.tenant_id.type))
                label = sa.literal_column(str(len(branches))).label("branch")
                branches.append(
                    sa.select(*self.columns, visible, label)
                    .where(*where)
                    .order_by(*self._order_by(rows.c, shape))
                    .limit(limit)
                )
        if len(branches) == 1:
            return branches[0]
        heads = sa.union_all(*(sa.select(b.subquery()) for b in branches)).subquery("heads")
        return sa.select(heads).order_by(*self._order_by(heads.c, shape))

    @staticmethod
    def _order_by(c: Any, shape: ListingShape, *, by_expression: bool = False) -> list[sa.ColumnElement]:
        names = ["id", "tenant_id"] if shape.by_id else [shape.order, "id", "tenant_id"]
        out = []
        for i, name in enumerate(names):
            nullable = i == 0 and not shape.by_id
            term = sa.func.coalesce(c[name], c[name]) if by_expression else c[name]
            if shape.descending:
                out.append(term.desc().nulls_last() if nullable else term.desc())
            else:
                out.append(term.asc().nulls_first() if nullable else term.asc())
        return out

    # -- keyset ---------------------------------------------------------------------------------

    def _segments(self, shape: ListingShape, j: int | None) -> list[sa.ColumnElement[bool]]:
        """Index ranges (within tenant slot ``j``) covering every key after the cursor, in order."""
        if shape.after is None:
            return [sa.true()]
        rows = self.rows
        inclusive = shape.inclusive[j] if j is not None else False
        if shape.by_id:
            return [self._after(rows.c.id, j, inclusive, shape.descending)]
        column = rows.c[shape.order]
        if shape.after == "null":
            within = sa.and_(column.is_(None), self._after(rows.c.id, j, inclusive, shape.descending))
            # ascending, the non-NULL values follow the NULLs; descending, NULLs are last
            return [within] if shape.descending else [within, column.is_not(None)]
        within = self._after_pair(column, j, inclusive, shape.descending)
        return [within, column.is_(None)] if shape.descending else [within]

    def _after(self, id_column: sa.ColumnElement, j: int | None, inclusive: bool, desc: bool) -> sa.ColumnElement[bool]:
        """``id`` after the cursor's id (ties broken by tenant)."""
        cursor_id = sa.bindparam("after_id", type_=self.rows.c.id.type)
        if j is None:
            pair = sa.tuple_(id_column, self.rows.c.tenant_id)
            bound = sa.tuple_(cursor_id, sa.bindparam("after_t", type_=self.rows.c.tenant_id.type))
            return pair < bound if desc else pair > bound
        if desc:
            return id_column <= cursor_id if inclusive else id_column < cursor_id
        return id_column >= cursor_id if inclusive else id_column > cursor_id

    def _after_pair(
        self, column: sa.ColumnElement, j: int | None, inclusive: bool, desc: bool
    ) -> sa.ColumnElement[bool]:
        """``(column, id)`` after the cursor's, for non-NULL ``column`` values."""
        value = sa.bindparam("after_v", type_=column.type)
        cursor_id = sa.bindparam("after_id", type_=self.rows.c.id.type)
        if j is None:
            triple = sa.tuple_(column, self.rows.c.id, self.rows.c.tenant_id)
            bound = sa.tuple_(value, cursor_id, sa.bindparam("after_t", type_=self.rows.c.tenant_id.type))
            return triple < bound if desc else triple > bound
        pair, bound = sa.tuple_(column, self.rows.c.id), sa.tuple_(value, cursor_id)
        if desc:
            return pair <= bound if inclusive else pair < bound
        return pair >= bound if inclusive else pair > bound
