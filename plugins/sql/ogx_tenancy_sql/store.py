"""``SqlStore``: the access-controlled store on SQLite and PostgreSQL.

Every call reads ``current_actor()`` and decides with the core policy engine (``Policy``), the
caller's tenant partition first:

* **create** — the row as it would be stored (owner, attributes and tenant stamped from the actor;
  reserved names in the data are refused with ``InvalidRowData``) must be permitted ``create``;
* **get / update / delete by id** — the id is looked up in the caller's own tenant, then among the
  global rows (tenant ``""``); the first of these the caller may ``read`` is *the* row (the one
  ``list`` would show). A system context without a tenant addresses global rows only.
  Not readable = not found; readable but not permitted ``update``/``delete`` = ``AccessDenied``;
* **list / update_where / delete_where** — rows the caller may ``read`` *and* perform the action on
  (a caller never acts on rows it cannot see); the decision is pushed into SQL (``compile``),
  except ``regex:`` resource scopes, which are finished in Python. A listing first reads the heads
  of the caller's partition (enough when the caller sees most of it), else the index-served access
  paths (``listing``), scanning ahead in keyset batches until the page is full;
* no actor: reads return nothing, writes raise ``AccessDenied``; a ``system_context`` may do
  everything within its tenant (all tenants when it has none) and may set owners.

Unowned means ``owner_principal`` NULL, for reading and writing alike (the policy's
``resource is unowned``; OGX's default policy lets everyone in the partition use such rows).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from ogx_tenancy.context import Actor, SystemContext, current_actor
from ogx_tenancy.policy import (
    FALSE,
    Action,
    Const,
    Expr,
    Policy,
    Resource,
    RowFacts,
    conjoin,
    record_type,
    tenant_partition,
)
from ogx_tenancy.store import (
    AccessDenied,
    CollectionSpec,
    InvalidRowData,
    Owner,
    Page,
    Row,
    RowConflict,
    RowNotFound,
    StoreCapabilities,
)
from ogx_tenancy.types import Identity

from .backend import SqlBackend
from .compile import PUSHDOWN, Compiler, bind_values, prepare, shape, storable
from .listing import Access, Key, ListingStatements, plan
from .rowdata import (
    check_attributes,
    check_data,
    check_filter,
    check_id,
    check_order,
    decode_cursor,
    encode_cursor,
)
from .schema import CollectionTables

log = structlog.get_logger("ogx_tenancy.sql", plugin="sql")  # lazy: follows the host's logging setup

_SCAN_BATCH_MAX = 1000  # rows fetched per round when the policy is finished in Python
_PROBE_MAX = 256  # rows read from the head of each partition range before trying the access paths (0: never)
_WRITE_BATCH = 500  # rows locked and changed per round by update_where/delete_where in Python mode
_DECISIONS_MAX = 4096  # (action, actor) decisions remembered per store


def _insert_ignoring_conflicts(table: sa.Table) -> sa.TextClause:
    """``INSERT INTO table (...) VALUES (...) ON CONFLICT DO NOTHING RETURNING id`` (same syntax on
    both dialects): no row back means the id or a unique group was taken."""
    # names are plain lower-case identifiers (schema.check_names), so double quotes suffice on both
    names = [c.name for c in table.columns]
    columns = ", ".join(f'"{n}"' for n in names)
    values = ", ".join(f":{n}" for n in names)
    return sa.text(
        f'INSERT INTO "{table.name}" ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING RETURNING id'
    ).bindparams(*(sa.bindparam(c.name, type_=c.type) for c in table.columns))


def _decoder(column_type: sa.types.TypeEngine, dialect: str) -> Callable[[Any], Any] | None:
    """How a raw driver value of this column becomes the Row's. SQLite hands JSON over as text and
    booleans as 0/1; on PostgreSQL, SQLAlchemy's asyncpg codecs already decoded jsonb."""
    if dialect != "sqlite":
        return None
    if isinstance(column_type, sa.JSON):
        return lambda value: value if value is None else json.loads(value)
    if isinstance(column_type, sa.Boolean):
        return lambda value: value if value is None else bool(value)
    return None


def _insert_from_arrays(table: sa.Table) -> sa.TextClause:
    """PostgreSQL: ``INSERT INTO table (...) SELECT ... FROM unnest(:col1, :col2, ...)``, one array
    per column (JSON columns as text, cast back to jsonb)."""
    names = [c.name for c in table.columns]
    json_names = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    element = {name: sa.Text() if name in json_names else table.c[name].type for name in names}
    selected = ", ".join(f'u."{n}"::jsonb' if n in json_names else f'u."{n}"' for n in names)
    arrays = ", ".join(f":{n}" for n in names)
    aliases = ", ".join(f'"{n}"' for n in names)
    return sa.text(
        f'INSERT INTO "{table.name}" ({aliases}) SELECT {selected} FROM unnest({arrays}) AS u({aliases})'
    ).bindparams(*(sa.bindparam(n, type_=postgresql.ARRAY(element[n])) for n in names))


class Decision(NamedTuple):
    """What the policy means for one (action, actor) on this store."""

    exact: Expr  # the whole row filter
    pushed: Expr  # the part SQL decides (``exact`` itself when it compiles entirely)
    access: Access  # the index-served paths ``pushed`` allows


class SqlStore:
    """One collection's rows, with row-level access control (``AccessControlledStore``)."""

    def __init__(self, backend: SqlBackend, tables: CollectionTables, policy: Policy):
        self.collection: CollectionSpec = tables.spec
        self.policy = policy
        self.capabilities: StoreCapabilities = backend.capabilities
        self._backend = backend
        self._tables = tables
        self._rows = tables.rows
        self._grants = tables.grants
        self._compiler = Compiler(tables)
        self._type = record_type(self.collection.name)
        self._field_names = [f.name for f in self.collection.fields]
        rows = self._rows
        self._columns = [
            rows.c.tenant_id,
            rows.c.id,
            rows.c.owner_principal,
            rows.c.access_attributes,
            rows.c.revision,
            *(rows.c[name] for name in self._field_names),
        ]
        # One statement (grants follow by trigger), so a create outside a transaction needs no BEGIN;
        # a taken id or unique group inserts nothing instead of aborting a transaction. It is a hot
        # path, so it goes through ``fetch`` (compiled once, executed on the driver).
        self._insert = backend.compile(_insert_ignoring_conflicts(rows))
        self._listing = ListingStatements(self._compiler, self._columns, backend.dialect, backend.compile)
        self._decisions: dict[tuple[Action, Actor], Decision] = {}
        # get by id, in one tenant (t0) or two (t0, t1)
        self._get = {
            count: backend.compile(
                sa.select(*self._columns).where(
                    rows.c.id == sa.bindparam("id", type_=rows.c.id.type),
                    rows.c.tenant_id.in_([sa.bindparam(f"t{j}", type_=rows.c.tenant_id.type) for j in range(count)]),
                )
            )
            for count in (1, 2)
        }
        self._decoding = [
            (index, decode)
            for index, column in enumerate(self._columns)
            if (decode := _decoder(column.type, backend.dialect)) is not None
        ]
        self._json_columns = [c.name for c in rows.columns if isinstance(c.type, sa.JSON)]
        if backend.dialect == "postgresql":
            self._bulk_insert = _insert_from_arrays(rows)

    @property
    def rows_table(self) -> sa.Table:
        """The SQLAlchemy table holding the rows (for tools and benchmarks; bypasses access control)."""
        return self._rows

    def __repr__(self) -> str:
        return f"SqlStore({self.collection.name!r}, {self._backend.dialect}, {self.policy!r})"

    # -- create ---------------------------------------------------------------------------------

    async def create(self, id: str, data: Mapping[str, Any], *, owner: Owner | None = None) -> Row:
        """Insert a row owned by the actor; see ``AccessControlledStore.create``."""
        actor = current_actor()
        check_id(id)
        values = check_data(self.collection, data, partial=False)
        if actor is None:
            raise AccessDenied(f"create {self.collection.name} row {id!r}: no identity")
        principal, attributes, tenant_id = self._stamp(actor, owner)
        resource = Resource(self._type, id, principal, attributes, tenant_id)
        if not self.policy.is_allowed(Action.CREATE, resource, actor):
            raise AccessDenied(f"create {self.collection.name} row {id!r}: not permitted")
        record = {
            "tenant_id": tenant_id,
            "id": id,
            "owner_principal": principal,
            "access_attributes": attributes,
            "revision": 1,
            **values,
        }
        if not await self._backend.fetch(self._insert, record):
            async with self._backend.connection() as conn:
                raise RowConflict(await self._conflict_reason(conn, tenant_id, id, values))
        return Row(id, values, principal, attributes, tenant_id, 1)

    async def bulk_create(
        self, items: Iterable[tuple[str, Mapping[str, Any], Owner | None]], *, batch: int = 5000
    ) -> int:
        """Insert many rows fast, for imports and fixtures; only in a ``system_context``.

        Each item is ``(id, data, owner)``; the rows are checked like ``create``'s, written in
        batches of ``batch`` (one transaction each, or the caller's ``transaction()``). A taken id
        or unique group fails the batch with ``RowConflict``. Returns how many rows were written.
        """
        actor = current_actor()
        if not isinstance(actor, SystemContext):
            raise AccessDenied(f"bulk_create into {self.collection.name}: only in a system context")
        written = 0
        rows: list[dict[str, Any]] = []
        for id, data, owner in items:
            check_id(id)
            values = check_data(self.collection, data, partial=False)
            principal, attributes, tenant_id = self._stamp(actor, owner)
            if not self.policy.is_allowed(
                Action.CREATE, Resource(self._type, id, principal, attributes, tenant_id), actor
            ):
                raise AccessDenied(f"create {self.collection.name} row {id!r}: not permitted")
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "id": id,
                    "owner_principal": principal,
                    "access_attributes": attributes,
                    "revision": 1,
                    **values,
                }
            )
            if len(rows) >= batch:
                written += await self._write_bulk(rows)
                rows = []
        if rows:
            written += await self._write_bulk(rows)
        return written

    async def _write_bulk(self, rows: list[dict[str, Any]]) -> int:
        rows.sort(key=lambda r: (r["tenant_id"], r["id"]))  # index pages filled in order
        try:
            async with self._backend.writing() as conn:
                if self._backend.dialect == "postgresql":
                    # one INSERT ... SELECT FROM unnest(arrays) per batch: one statement, so the grants
                    # trigger runs once, set-based, for the whole batch
                    columns = {c.name: [r[c.name] for r in rows] for c in self._rows.columns}
                    for name in self._json_columns:
                        columns[name] = [None if v is None else json.dumps(v) for v in columns[name]]
                    await conn.execute(self._bulk_insert, columns)
                else:
                    await conn.execute(sa.insert(self._rows), rows)
        except IntegrityError:
            raise RowConflict(
                f"bulk_create into {self.collection.name}: an id or unique field group is taken"
            ) from None
        return len(rows)

    def _stamp(self, actor: Actor, owner: Owner | None) -> tuple[str | None, dict[str, list[str]] | None, str]:
        """(owner_principal, access_attributes, tenant_id) of a row ``actor`` creates."""
        if isinstance(actor, Identity):
            if owner is not None:
                log.warning("owner= ignored outside a system context", collection=self.collection.name)
            if actor.principal is not None and not storable(actor.principal):
                raise InvalidRowData("the caller's principal cannot be stored (NUL or unpaired surrogate)")
            if actor.tenant_id is not None and not storable(actor.tenant_id):
                raise InvalidRowData("the caller's tenant id cannot be stored (NUL or unpaired surrogate)")
            return actor.principal or None, check_attributes(actor.attributes_as_lists()), actor.tenant_id or ""
        if owner is None:
            return None, None, actor.tenant_id or ""
        principal = owner.principal or None
        if principal is not None and (not isinstance(principal, str) or not storable(principal)):
            raise InvalidRowData("owner principal must be a string without NUL characters")
        tenant_id = owner.tenant_id if owner.tenant_id is not None else (actor.tenant_id or "")
        if not isinstance(tenant_id, str) or not storable(tenant_id):
            raise InvalidRowData("owner tenant id must be a string without NUL characters")
        return principal, check_attributes(owner.attributes), tenant_id

    async def _conflict_reason(self, conn: Any, tenant_id: str, id: str, values: Mapping[str, Any]) -> str:
        rows = self._rows
        taken = (await conn.execute(sa.select(rows.c.id).where(rows.c.tenant_id == tenant_id, rows.c.id == id))).first()
        if taken is not None:
            return f"{self.collection.name} row {id!r} already exists"
        return self._unique_message(values)

    def _unique_message(self, values: Mapping[str, Any]) -> str:
        groups = [g for g in self.collection.unique if any(f in values for f in g)] or list(self.collection.unique)
        named = " or ".join("(" + ", ".join(g) + ")" for g in groups)
        return f"{self.collection.name}: another row already has these values of {named or 'a unique field group'}"

    # -- read -----------------------------------------------------------------------------------

    async def get(self, id: str) -> Row | None:
        """The row ``id`` if the actor may read it, else None."""
        actor = current_actor()
        if actor is None or not isinstance(id, str) or not storable(id):
            return None
        tenants = self._id_tenants(actor)
        params = {"id": id, **{f"t{j}": tenant for j, tenant in enumerate(tenants)}}
        found = [self._decode(r) for r in await self._backend.fetch(self._get[len(tenants)], params)]
        found.sort(key=lambda row: tenants.index(row.tenant_id))
        return self._first_permitted(found, actor, Action.READ)

    async def list(
        self,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 100,
        cursor: str | None = None,
        action: str = "read",
    ) -> Page:
        """A page of the rows the actor may read and perform ``action`` on."""
        filters = check_filter(self.collection, where)
        order = check_order(self.collection, order_by)
        if not isinstance(descending, bool):
            raise InvalidRowData("'descending' must be true or false")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidRowData("'limit' must be an integer >= 1")
        try:
            act = Action(action)
        except ValueError:
            raise InvalidRowData("'action' must be one of create, read, update, delete") from None
        after = decode_cursor(self.collection, cursor, order, descending, act.value)
        actor = current_actor()
        if actor is None:
            return Page([], False, None)
        tenants = self._partition(actor)
        exact, pushed, access = self._decision(act, actor)
        if tenants == () or pushed == FALSE or access.empty:
            return Page([], False, None)
        in_python = pushed != exact
        accepted: list[Row] | None = None
        if access.paths is not None and _PROBE_MAX > 0:
            accepted = await self._probe_heads(
                order, descending, tenants, pushed, exact, in_python, filters, after, limit
            )
        if accepted is None:
            accepted = await self._list_by_paths(
                order, descending, tenants, access, exact, in_python, filters, after, limit
            )
        has_more = len(accepted) > limit
        data = accepted[:limit]
        next_cursor = encode_cursor(order, descending, act.value, self._key(data[-1], order)) if has_more else None
        return Page(data, has_more, next_cursor)

    async def _probe_heads(
        self,
        order: str,
        descending: bool,
        tenants: tuple[str, ...] | None,
        pushed: Expr,
        exact: Expr,
        in_python: bool,
        filters: dict[str, Any],
        after: Key | None,
        limit: int,
    ) -> list[Row] | None:
        """The page's rows (up to limit + 1) from the heads of the caller's partition, or None.

        Callers often see most of their tenant (a team sharing everything): then the first rows
        of each tenant in order already hold the page, and reading them is as cheap as the query
        without access control. When a head holds too few visible rows, None: the access paths
        answer instead, and the probe cost at most ``_PROBE_MAX`` rows per range.
        """
        # room for a quarter more than the page: a caller who sees at least ~80% of each head is
        # answered here; below that the access paths are the cheaper way anyway
        size = min((limit + 1) * 5 // 4 + 1, _PROBE_MAX)
        shape, values = plan(
            order=order,
            descending=descending,
            tenants=tenants,
            access=Access(None, (pushed,)),
            where=filters,
            after=after,
            probe=True,
        )
        values["lim"] = size
        width = len(self._columns)
        examined: dict[int, int] = {}
        shown: dict[int, int] = {}
        visible: list[Any] = []  # Rows when Python must finish the decision, else raw records
        for record in await self._backend.fetch(self._listing.compiled(shape), values):
            branch = record[width + 1]
            examined[branch] = examined.get(branch, 0) + 1
            if not record[width]:
                continue
            if in_python:
                row = self._decode(record)
                if not exact.evaluate(RowFacts(row.id, row.owner_principal, row.access_attributes)):
                    continue
                record = row
            shown[branch] = shown.get(branch, 0) + 1
            visible.append(record)
        if not all(count < size or shown.get(branch, 0) > limit for branch, count in examined.items()):
            return None
        page = visible[: limit + 1]  # in the listing's order already; decode only what is returned
        return page if in_python else [self._decode(record) for record in page]

    async def _list_by_paths(
        self,
        order: str,
        descending: bool,
        tenants: tuple[str, ...] | None,
        access: Access,
        exact: Expr,
        in_python: bool,
        filters: dict[str, Any],
        after: Key | None,
        limit: int,
    ) -> list[Row]:
        """Up to limit + 1 rows through the access paths, scanning ahead while Python rejects rows."""
        accepted: list[Row] = []
        batch = limit + 1
        while True:
            query_shape, values = plan(
                order=order, descending=descending, tenants=tenants, access=access, where=filters, after=after
            )
            values["lim"] = batch
            fetched = [self._decode(r) for r in await self._backend.fetch(self._listing.compiled(query_shape), values)]
            for row in fetched:
                after = self._key(row, order)
                if not in_python or exact.evaluate(RowFacts(row.id, row.owner_principal, row.access_attributes)):
                    accepted.append(row)
                    if len(accepted) > limit:
                        break
            if len(accepted) > limit or len(fetched) < batch:
                return accepted
            batch = min(max(batch * 2, 64), _SCAN_BATCH_MAX)

    # -- update ---------------------------------------------------------------------------------

    async def update(self, id: str, changes: Mapping[str, Any], *, expected_revision: int | None = None) -> Row:
        """Change fields of one row and bump its revision; see ``AccessControlledStore.update``."""
        values = check_data(self.collection, changes, partial=True)
        if expected_revision is not None and (
            not isinstance(expected_revision, int) or isinstance(expected_revision, bool)
        ):
            raise InvalidRowData("'expected_revision' must be an integer")
        actor = current_actor()
        if actor is None:
            raise AccessDenied(f"update {self.collection.name} row {id!r}: no identity")
        if not isinstance(id, str) or not storable(id):
            raise RowNotFound(f"{self.collection.name} row not found")
        rows = self._rows
        async with self._backend.writing() as conn:
            target = self._first_permitted(await self._locked(conn, id, actor), actor, Action.READ)
            if target is None:
                raise RowNotFound(f"{self.collection.name} row {id!r} not found")
            if not self._allowed(Action.UPDATE, target, actor):
                raise AccessDenied(f"update {self.collection.name} row {id!r}: not permitted")
            if expected_revision is not None and expected_revision != target.revision:
                raise RowConflict(f"{self.collection.name} row {id!r} has changed (revision {target.revision})")
            statement = (
                sa.update(rows)
                .where(rows.c.tenant_id == target.tenant_id, rows.c.id == id, rows.c.revision == target.revision)
                .values(**values, revision=target.revision + 1)
                .returning(*self._columns)
            )
            async with self._unique_guard(conn, values):
                updated = (await conn.execute(statement)).first()
        if updated is None:  # cannot happen under the row lock; never report a lost update as success
            raise RowConflict(f"{self.collection.name} row {id!r} was changed concurrently")
        return self._row(updated)

    async def update_where(self, where: Mapping[str, Any], changes: Mapping[str, Any]) -> int:
        """Change every row matching ``where`` the actor may read and update; returns how many."""
        filters = check_filter(self.collection, where)
        values = check_data(self.collection, changes, partial=True)
        actor = current_actor()
        if actor is None:
            raise AccessDenied(f"update {self.collection.name} rows: no identity")
        rows = self._rows
        return await self._change_where(
            actor,
            Action.UPDATE,
            filters,
            lambda condition: sa.update(rows).where(condition).values(**values, revision=rows.c.revision + 1),
            values,
        )

    # -- delete ---------------------------------------------------------------------------------

    async def delete(self, id: str) -> bool:
        """Delete one row; False when missing or unreadable, ``AccessDenied`` when not deletable."""
        actor = current_actor()
        if actor is None:
            raise AccessDenied(f"delete {self.collection.name} row {id!r}: no identity")
        if not isinstance(id, str) or not storable(id):
            return False
        rows = self._rows
        async with self._backend.writing() as conn:
            target = self._first_permitted(await self._locked(conn, id, actor), actor, Action.READ)
            if target is None:
                return False
            if not self._allowed(Action.DELETE, target, actor):
                raise AccessDenied(f"delete {self.collection.name} row {id!r}: not permitted")
            await conn.execute(sa.delete(rows).where(rows.c.tenant_id == target.tenant_id, rows.c.id == id))
        return True

    async def delete_where(self, where: Mapping[str, Any]) -> int:
        """Delete every row matching ``where`` the actor may read and delete; returns how many."""
        filters = check_filter(self.collection, where)
        actor = current_actor()
        if actor is None:
            raise AccessDenied(f"delete {self.collection.name} rows: no identity")
        rows = self._rows
        return await self._change_where(
            actor, Action.DELETE, filters, lambda condition: sa.delete(rows).where(condition)
        )

    # -- transactions ---------------------------------------------------------------------------

    def transaction(self):
        """Make the enclosed calls on this store and every other store of its backend atomic."""
        return self._backend.transaction()

    # -- helpers --------------------------------------------------------------------------------

    def _partition(self, actor: Actor) -> tuple[str, ...] | None:
        tenants = tenant_partition(actor)
        return tenants if tenants is None else tuple(t for t in tenants if storable(t))

    def _decision(self, action: Action, actor: Actor) -> Decision:
        """The row filter for ``action`` (read permission always, plus the action's own), the part
        of it SQL decides, and the access paths that part allows.

        A pure function of the store's policy, the action and the actor (a frozen, hashable value),
        so it is remembered: a user's requests repeat it on every listing.
        """
        key = (action, actor)
        decision = self._decisions.get(key)
        if decision is None:
            read = self.policy.row_filter(Action.READ, self._type, actor)
            exact = (
                read if action == Action.READ else conjoin([read, self.policy.row_filter(action, self._type, actor)])
            )
            pushed = prepare(exact.relax(PUSHDOWN))
            decision = Decision(exact, pushed, Access.of(pushed))
            if len(self._decisions) >= _DECISIONS_MAX:
                del self._decisions[next(iter(self._decisions))]  # the oldest
            self._decisions[key] = decision
        return decision

    def _allowed(self, action: Action, row: Row, actor: Actor) -> bool:
        resource = Resource(self._type, row.id, row.owner_principal, row.access_attributes, row.tenant_id)
        return self.policy.is_allowed(action, resource, actor)

    def _first_permitted(self, candidates: list[Row], actor: Actor, action: Action) -> Row | None:
        for row in candidates:
            if self._allowed(action, row, actor):
                return row
        return None

    @staticmethod
    def _id_tenants(actor: Actor) -> list[str]:
        """The tenants an id is looked up in for ``actor``, most specific first."""
        tenant = actor.tenant_id if actor.tenant_id and storable(actor.tenant_id) else None
        return [tenant, ""] if tenant else [""]

    async def _locked(self, conn: Any, id: str, actor: Actor) -> list[Row]:
        """The rows ``id`` may mean for ``actor``, most specific tenant first, locked for a write."""
        tenants = self._id_tenants(actor)
        rows = self._rows
        query = sa.select(*self._columns).where(rows.c.id == id, rows.c.tenant_id.in_(tenants)).with_for_update()
        found = [self._row(r) for r in await conn.execute(query)]
        found.sort(key=lambda row: tenants.index(row.tenant_id))
        return found

    async def _change_where(
        self, actor: Actor, action: Action, filters: dict[str, Any], make: Any, values: Mapping[str, Any] = {}
    ) -> int:
        """Apply ``make(condition)`` (an UPDATE or DELETE) to the permitted rows matching ``filters``."""
        tenants = self._partition(actor)
        exact, pushed, _ = self._decision(action, actor)
        if tenants == () or pushed == FALSE:
            return 0
        rows = self._rows
        # not cached: these are rarer than listings; the literals go straight into the condition
        policy_condition = self._compiler.condition(shape(pushed), "f")
        if not isinstance(pushed, Const):  # true()/false() hold no parameters (and cannot be copied)
            policy_condition = policy_condition.params(bind_values(pushed, "f", {}))
        scope = [*self._where(filters), policy_condition]
        if tenants is not None:
            scope.insert(0, rows.c.tenant_id.in_(tenants))
        if pushed == exact:
            # decided entirely in SQL: one statement, atomic on its own
            async with self._backend.connection() as conn, self._unique_guard(conn, values):
                return (await conn.execute(make(sa.and_(*scope)))).rowcount
        # Part of the policy is decided in Python: lock candidates batch by batch, keep the permitted.
        changed = 0
        last: tuple[str, str] | None = None
        key = sa.tuple_(rows.c.tenant_id, rows.c.id)
        async with self._backend.writing() as conn, self._unique_guard(conn, values):
            while True:
                query = sa.select(*self._columns).where(*scope).order_by(rows.c.tenant_id, rows.c.id)
                if last is not None:
                    query = query.where(key > sa.tuple_(*last))
                locked = await conn.execute(query.limit(_WRITE_BATCH).with_for_update())
                batch = [self._row(r) for r in locked]
                chosen = [
                    (r.tenant_id, r.id)
                    for r in batch
                    if exact.evaluate(RowFacts(r.id, r.owner_principal, r.access_attributes))
                ]
                if chosen:
                    changed += (await conn.execute(make(key.in_(chosen)))).rowcount
                if len(batch) < _WRITE_BATCH:
                    return changed
                last = (batch[-1].tenant_id, batch[-1].id)

    @asynccontextmanager
    async def _unique_guard(self, conn: Any, values: Mapping[str, Any]) -> AsyncIterator[None]:
        """Turn a unique-group violation into ``RowConflict`` without spoiling an outer transaction."""
        touches_unique = any(f in values for group in self.collection.unique for f in group)
        if not touches_unique:
            yield
            return
        savepoint = await conn.begin_nested() if self._backend.in_transaction() else None
        try:
            yield
        except IntegrityError:
            if savepoint is not None:
                await savepoint.rollback()
            raise RowConflict(self._unique_message(values)) from None
        if savepoint is not None:
            await savepoint.commit()

    def _where(self, filters: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
        rows = self._rows
        return [rows.c[name].is_(None) if value is None else rows.c[name] == value for name, value in filters.items()]

    def _row(self, record: Any) -> Row:
        m = record._mapping
        return Row(
            id=m["id"],
            data={name: m[name] for name in self._field_names},
            owner_principal=m["owner_principal"],
            access_attributes=m["access_attributes"],
            tenant_id=m["tenant_id"],
            revision=m["revision"],
        )

    def _decode(self, record: Sequence[Any]) -> Row:
        """A Row from a raw driver row starting with ``self._columns`` (extra columns are ignored)."""
        values = list(record[: len(self._columns)])
        for index, decode in self._decoding:
            values[index] = decode(values[index])
        data = dict(zip(self._field_names, values[5:], strict=True))  # the fields follow the five stamps
        return Row(values[1], data, values[2], values[3], values[0], values[4])

    @staticmethod
    def _key(row: Row, order: str) -> Key:
        return (row.id if order == "id" else row.data[order], row.id, row.tenant_id)
