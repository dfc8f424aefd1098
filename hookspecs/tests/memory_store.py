"""A small in-memory ``AccessControlledStore`` that follows the store contract, for testing the
services without a database (the SQL backends are tested against the same services elsewhere).

Every decision goes through ``Policy.is_allowed`` and ``tenant_partition``, exactly as the contract
says; ``transaction()`` serialises and rolls back on error.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ogx_tenancy.context import SystemContext, current_actor
from ogx_tenancy.policy import Policy, Resource, in_partition, record_type
from ogx_tenancy.store import (
    RESERVED_FIELDS,
    AccessDenied,
    CollectionSpec,
    InvalidRowData,
    Owner,
    Page,
    Row,
    RowConflict,
    RowNotFound,
    StoreCapabilities,
    without_reserved,
)

_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool}


class MemoryBackend:
    """Stores per collection, sharing one lock so a transaction covers all of them."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[str, str], Row]] = {}
        self.lock = asyncio.Lock()
        self.in_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar("memory_tx", default=False)

    async def open_store(self, collection: CollectionSpec, policy: Policy) -> MemoryStore:
        return MemoryStore(self, collection, policy)

    async def close(self) -> None:
        pass


class MemoryStore:
    capabilities = StoreCapabilities(transactions=True, persistent=False)

    def __init__(self, backend: MemoryBackend, collection: CollectionSpec, policy: Policy):
        self.backend = backend
        self.collection = collection
        self.policy = policy
        self.rows = backend.tables.setdefault(collection.name, {})

    # -- helpers -------------------------------------------------------------------------------

    def _check(self, data: Mapping[str, Any]) -> None:
        for name, value in data.items():
            if name in RESERVED_FIELDS:
                raise InvalidRowData(f"{name} is reserved")
            try:
                spec = self.collection.field(name)
            except KeyError:
                raise InvalidRowData(f"unknown field {name}") from None
            if value is None or spec.type == "json":
                json.dumps(value)
                continue
            if not isinstance(value, _TYPES[spec.type]) or (spec.type == "int" and isinstance(value, bool)):
                raise InvalidRowData(f"{name} must be {spec.type}")

    def _resource(self, row: Row) -> Resource:
        return Resource(
            record_type(self.collection.name), row.id, row.owner_principal, row.access_attributes, row.tenant_id
        )

    def _allowed(self, action: str, row: Row) -> bool:
        return self.policy.is_allowed(action, self._resource(row), current_actor())

    def _visible(self, id: str) -> Row | None:
        # an id addresses the actor's own tenant's row, else the global one (a system context
        # without a tenant addresses global rows only), as the SQL backends do
        actor = current_actor()
        own = getattr(actor, "tenant_id", None) or ""
        for tenant in dict.fromkeys((own, "")):
            row = self.rows.get((tenant, id))
            if row is not None and in_partition(row.tenant_id, actor) and self._allowed("read", row):
                return row
        return None

    @asynccontextmanager
    async def _atomic(self) -> AsyncIterator[None]:
        if self.backend.in_transaction.get():
            yield
            return
        async with self.transaction():
            yield

    # -- the contract --------------------------------------------------------------------------

    async def create(self, id: str, data: Mapping[str, Any], *, owner: Owner | None = None) -> Row:
        data = without_reserved(data)
        actor = current_actor()
        if actor is None:
            raise AccessDenied(f"create {id}")
        self._check(data)
        if isinstance(actor, SystemContext):
            principal = owner.principal if owner else None
            attributes = owner.attributes if owner else None
            tenant = (owner.tenant_id if owner and owner.tenant_id is not None else actor.tenant_id) or ""
        else:
            principal, attributes, tenant = actor.principal, actor.attributes_as_lists(), actor.tenant_id or ""
        values = {f.name: None for f in self.collection.fields} | copy.deepcopy(dict(data))
        row = Row(id, values, principal, copy.deepcopy(dict(attributes)) if attributes else None, tenant, 1)
        if not in_partition(tenant, actor) or not self._allowed("create", row):
            raise AccessDenied(f"create {id}")
        async with self._atomic():
            if (tenant, id) in self.rows:
                raise RowConflict(id)
            self.rows[(tenant, id)] = row
        return row

    async def get(self, id: str) -> Row | None:
        return self._visible(id)

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
        if limit < 1:
            raise InvalidRowData("limit must be >= 1")
        self._check(where or {})
        actor = current_actor()

        def key(row: Row) -> tuple[Any, str]:
            return (row.data[order_by] if order_by else row.id, row.id)

        rows = [
            row
            for row in self.rows.values()
            if in_partition(row.tenant_id, actor)
            and all(row.data.get(k) == v for k, v in (where or {}).items())
            and self._allowed("read", row)
            and self._allowed(action, row)
        ]
        rows.sort(key=key, reverse=descending)
        if cursor is not None:
            last = tuple(json.loads(cursor))
            rows = [r for r in rows if (key(r) < last if descending else key(r) > last)]
        page = rows[:limit]
        has_more = len(rows) > limit
        return Page(page, has_more, json.dumps(list(key(page[-1]))) if has_more else None)

    async def update(self, id: str, changes: Mapping[str, Any], *, expected_revision: int | None = None) -> Row:
        changes = without_reserved(changes)
        self._check(changes)
        async with self._atomic():
            row = self._visible(id)
            if row is None:
                raise RowNotFound(id)
            if not self._allowed("update", row):
                raise AccessDenied(f"update {id}")
            if expected_revision is not None and row.revision != expected_revision:
                raise RowConflict(id)
            updated = Row(
                row.id,
                {**row.data, **copy.deepcopy(dict(changes))},
                row.owner_principal,
                row.access_attributes,
                row.tenant_id,
                row.revision + 1,
            )
            self.rows[(row.tenant_id, row.id)] = updated
            return updated

    async def update_where(self, where: Mapping[str, Any], changes: Mapping[str, Any]) -> int:
        page = await self.list(where=where, limit=10**9, action="update")
        for row in page.data:
            await self.update(row.id, changes)
        return len(page.data)

    async def delete(self, id: str) -> bool:
        async with self._atomic():
            row = self._visible(id)
            if row is None:
                return False
            if not self._allowed("delete", row):
                raise AccessDenied(f"delete {id}")
            del self.rows[(row.tenant_id, row.id)]
            return True

    async def delete_where(self, where: Mapping[str, Any]) -> int:
        page = await self.list(where=where, limit=10**9, action="delete")
        for row in page.data:
            await self.delete(row.id)
        return len(page.data)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self.backend.in_transaction.get():
            yield
            return
        async with self.backend.lock:
            snapshot = {name: dict(rows) for name, rows in self.backend.tables.items()}
            token = self.backend.in_transaction.set(True)
            try:
                yield
            except BaseException:
                for name, rows in snapshot.items():
                    self.backend.tables[name].clear()
                    self.backend.tables[name].update(rows)
                raise
            finally:
                self.backend.in_transaction.reset(token)
