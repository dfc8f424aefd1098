"""An in-memory access-controlled store: the core's contract implemented in plain Python.

Every decision goes through the core's ``Policy`` (its row filter, behind the tenant partition), so
the store only has to keep rows, order them and page them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import copy
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from ogx_tenancy import (
    AccessDenied,
    CollectionSpec,
    InvalidRowData,
    Owner,
    Page,
    Policy,
    Resource,
    Row,
    RowConflict,
    RowNotFound,
    StoreCapabilities,
    current_actor,
)
from ogx_tenancy.context import Actor, SystemContext
from ogx_tenancy.policy import RowFacts, in_partition, record_type
from ogx_tenancy.store import without_reserved

_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


class MemoryBackendConfig(BaseModel):
    """``tenancy.storage.config`` of backend ``acme-memory``: nothing to configure."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class StoredRow:
    id: str
    data: dict[str, Any]
    owner_principal: str | None
    access_attributes: dict[str, list[str]] | None
    tenant_id: str
    revision: int

    def public(self) -> Row:
        return Row(
            self.id,
            copy.deepcopy(self.data),
            self.owner_principal,
            copy.deepcopy(self.access_attributes),
            self.tenant_id,
            self.revision,
        )

    def facts(self) -> RowFacts:
        return RowFacts(self.id, self.owner_principal, self.access_attributes)


class MemoryBackend:
    """Tables of rows keyed by (tenant, id), one lock for the whole backend."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[str, str], StoredRow]] = {}
        self.lock = asyncio.Lock()
        self.in_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar("acme_memory_tx", default=False)

    async def open_store(self, collection: CollectionSpec, policy: Policy) -> MemoryStore:
        self.tables.setdefault(collection.name, {})
        return MemoryStore(self, collection, policy)

    async def close(self) -> None:
        self.tables.clear()

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        if self.in_transaction.get():
            yield
            return
        async with self.lock:
            yield


async def open_memory_backend(config: BaseModel) -> MemoryBackend:
    return MemoryBackend()


class MemoryStore:
    """One collection. See ``ogx_tenancy.store.AccessControlledStore`` for the contract."""

    capabilities = StoreCapabilities(
        transactions=True, concurrent_processes=False, pushdown=frozenset(), persistent=False
    )

    def __init__(self, backend: MemoryBackend, collection: CollectionSpec, policy: Policy):
        self.backend = backend
        self.collection = collection
        self.policy = policy
        self.resource_type = record_type(collection.name)

    @property
    def rows(self) -> dict[tuple[str, str], StoredRow]:
        return self.backend.tables[self.collection.name]

    # -- validation -------------------------------------------------------------------------

    def _check_data(self, data: Mapping[str, Any]) -> dict[str, Any]:
        known = {f.name: f for f in self.collection.fields}
        data = without_reserved(data)  # the store stamps those itself
        for name, value in data.items():
            if name not in known:
                raise InvalidRowData(f"unknown field {name!r} in collection {self.collection.name!r}")
            self._check_value(known[name].type, name, value)
        return copy.deepcopy(dict(data))

    @staticmethod
    def _check_value(kind: str, name: str, value: Any) -> None:
        if value is None:
            return
        if kind == "json":
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise InvalidRowData(f"field {name!r} must hold JSON") from None
            return
        if not isinstance(value, _TYPES[kind]) or (kind in ("int", "float") and isinstance(value, bool)):
            raise InvalidRowData(f"field {name!r} must be of type {kind}")

    def _check_where(self, where: Mapping[str, Any] | None) -> dict[str, Any]:
        where = dict(where or {})
        known = {f.name for f in self.collection.fields}
        unknown = [k for k in where if k not in known]
        if unknown:
            raise InvalidRowData(f"cannot filter on unknown field(s) {unknown}")
        return where

    # -- decisions ----------------------------------------------------------------------------

    def _permitted(self, actor: Actor | None, action: str) -> list[StoredRow]:
        expr = self.policy.row_filter(action, self.resource_type, actor)
        return [r for r in self.rows.values() if in_partition(r.tenant_id, actor) and expr.evaluate(r.facts())]

    def _allows(self, actor: Actor | None, action: str, row: StoredRow) -> bool:
        resource = Resource(self.resource_type, row.id, row.owner_principal, row.access_attributes, row.tenant_id)
        return self.policy.is_allowed(action, resource, actor)

    def _locate(self, actor: Actor | None, id: str) -> StoredRow | None:
        """The row ``id`` names for this actor: their tenant's, else the global one."""
        if actor is None:
            return None
        if isinstance(actor, SystemContext) and actor.tenant_id is None:
            matches = sorted((r for r in self.rows.values() if r.id == id), key=lambda r: r.tenant_id)
            return matches[0] if matches else None
        for tenant in (actor.tenant_id or "", ""):
            row = self.rows.get((tenant, id))
            if row is not None:
                return row
        return None

    def _check_create(self, actor: Actor | None, row: StoredRow) -> None:
        if not self._allows(actor, "create", row):
            raise AccessDenied(f"create of {row.id!r} denied")

    def _check_unique(self, row: StoredRow) -> None:
        for group in self.collection.unique:
            key = tuple(row.data.get(f) for f in group)
            if all(v is None for v in key):
                continue
            for other in self.rows.values():
                if (
                    other is not row
                    and other.tenant_id == row.tenant_id
                    and tuple(other.data.get(f) for f in group) == key
                ):
                    raise RowConflict(f"unique fields {list(group)} already taken in this tenant")

    # -- the contract -------------------------------------------------------------------------

    async def create(self, id: str, data: Mapping[str, Any], *, owner: Owner | None = None) -> Row:
        actor = current_actor()
        if actor is None:
            raise AccessDenied(f"create of {id!r} denied: no identity")
        clean = self._check_data(data)
        if isinstance(actor, SystemContext):
            tenant = (owner.tenant_id if owner and owner.tenant_id else actor.tenant_id) or ""
            principal = owner.principal if owner else None
            attributes = {c: list(v) for c, v in (owner.attributes or {}).items()} if owner else None
        else:
            tenant, principal, attributes = actor.tenant_id or "", actor.principal, actor.attributes_as_lists()
        row = StoredRow(id, clean, principal, attributes, tenant, 1)
        async with self.backend.guard():
            self._check_create(actor, row)
            if (tenant, id) in self.rows:
                raise RowConflict(f"row {id!r} already exists in this tenant")
            self._check_unique(row)
            self.rows[(tenant, id)] = row
            return row.public()

    async def get(self, id: str) -> Row | None:
        actor = current_actor()
        async with self.backend.guard():
            row = self._locate(actor, id)
            return row.public() if row is not None and self._allows(actor, "read", row) else None

    def _sort_key(self, order_by: str, row: StoredRow) -> list[Any]:
        value = row.id if order_by == "id" else row.data.get(order_by)
        return [value is not None, value if value is not None else 0, row.id, row.tenant_id]

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
        if not isinstance(limit, int) or limit < 1:
            raise InvalidRowData("limit must be at least 1")
        filters = self._check_where(where)
        order_by = order_by or "id"
        if order_by != "id" and order_by not in {f.name for f in self.collection.fields}:
            raise InvalidRowData(f"cannot order by unknown field {order_by!r}")
        actor = current_actor()
        after = self._decode_cursor(cursor)
        async with self.backend.guard():
            rows = [
                r
                for r in self._candidates(actor, action, cursor)
                if all(r.data.get(k) == v for k, v in filters.items())
            ]
        keyed = sorted(((self._sort_key(order_by, r), r) for r in rows), key=lambda kr: kr[0], reverse=descending)
        if after is not None:
            keyed = [(k, r) for k, r in keyed if (k < after if descending else k > after)]
        page = keyed[:limit]
        has_more = len(keyed) > limit
        next_cursor = self._encode_cursor(page[-1][0]) if has_more else None
        return Page([r.public() for _, r in page], has_more, next_cursor)

    def _candidates(self, actor: Actor | None, action: str, cursor: str | None) -> list[StoredRow]:
        return self._permitted(actor, action)

    @staticmethod
    def _encode_cursor(key: list[Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()

    @staticmethod
    def _decode_cursor(cursor: str | None) -> list[Any] | None:
        if cursor is None:
            return None
        try:
            key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        except (ValueError, TypeError):
            raise InvalidRowData("invalid cursor") from None
        if not isinstance(key, list) or len(key) != 4:
            raise InvalidRowData("invalid cursor")
        return key

    async def update(self, id: str, changes: Mapping[str, Any], *, expected_revision: int | None = None) -> Row:
        actor = current_actor()
        clean = self._check_data(changes)
        async with self.backend.guard():
            row = self._locate(actor, id)
            if row is None or not self._allows(actor, "read", row):
                raise RowNotFound(f"row {id!r} not found")
            if not self._allows(actor, "update", row):
                raise AccessDenied(f"update of {id!r} denied")
            if expected_revision is not None and expected_revision != row.revision:
                raise RowConflict(f"row {id!r} has changed (revision {row.revision})")
            self._apply(row, clean)
            return row.public()

    def _apply(self, row: StoredRow, changes: dict[str, Any]) -> None:
        before = dict(row.data)
        row.data.update(changes)
        try:
            self._check_unique(row)
        except RowConflict:
            row.data = before
            raise
        row.revision += 1

    async def update_where(self, where: Mapping[str, Any], changes: Mapping[str, Any]) -> int:
        actor = current_actor()
        filters, clean = self._check_where(where), self._check_data(changes)
        async with self.backend.guard():
            targets = [
                r
                for r in self._permitted(actor, "update")
                if self._allows(actor, "read", r) and all(r.data.get(k) == v for k, v in filters.items())
            ]
            for row in targets:
                self._apply(row, dict(clean))
            return len(targets)

    async def delete(self, id: str) -> bool:
        actor = current_actor()
        async with self.backend.guard():
            row = self._locate(actor, id)
            if row is None or not self._allows(actor, "read", row):
                return False
            if not self._allows(actor, "delete", row):
                raise AccessDenied(f"delete of {id!r} denied")
            del self.rows[(row.tenant_id, row.id)]
            return True

    async def delete_where(self, where: Mapping[str, Any]) -> int:
        actor = current_actor()
        filters = self._check_where(where)
        async with self.backend.guard():
            targets = [
                r
                for r in self._permitted(actor, "delete")
                if self._allows(actor, "read", r) and all(r.data.get(k) == v for k, v in filters.items())
            ]
            for row in targets:
                del self.rows[(row.tenant_id, row.id)]
            return len(targets)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self.backend.in_transaction.get():
            yield  # nested: part of the outer transaction
            return
        async with self.backend.lock:
            snapshot = copy.deepcopy(self.backend.tables)
            token = self.backend.in_transaction.set(True)
            try:
                yield
            except BaseException:
                self.backend.tables.clear()
                self.backend.tables.update(snapshot)
                raise
            finally:
                self.backend.in_transaction.reset(token)
