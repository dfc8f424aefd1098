"""Connectors (MCP servers) on the store contract: global ones and per-tenant ones.

Connectors are configuration, not user data: they are written only at start-up, by ``sync``, in
an explicit system context, and are unowned, so every user of their tenant may read them under
OGX's default policy (``resource is unowned``). A global connector (OGX's top-level
``connectors:``) has tenant ``""`` and is seen by every tenant; a tenant's connector
(``tenancy.services.connectors.tenants``) only by that tenant's users. Users only read: list and get.

One collection, ``connectors`` (OGX's table name, so policies naming ``sql_record::connectors``
apply); the row id is the connector id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from ..context import system_context
from ..store import AccessControlledStore, CollectionSpec, FieldSpec, Row
from . import InvalidRequest, NotFound, require_system_context

log = structlog.get_logger("ogx_tenancy.services.connectors")

CONNECTORS = CollectionSpec(
    name="connectors",
    fields=(
        FieldSpec("connector_type", "str"),
        FieldSpec("url", "str"),
        FieldSpec("server_label", "json"),
        FieldSpec("server_name", "json"),
        FieldSpec("server_description", "json"),
    ),
)

GLOBAL = ""  # the tenant id of rows every tenant sees
_PAGE = 100


class ConnectorNotFound(NotFound):
    def __init__(self, connector_id: str):
        super().__init__(f"Connector '{connector_id}' not found")
        self.connector_id = connector_id


@dataclass(frozen=True, slots=True)
class ConnectorRecord:
    """A connector as stored: OGX's ``Connector`` fields without the live server details."""

    connector_id: str
    url: str
    connector_type: str = "mcp"
    server_label: str | None = None
    server_name: str | None = None
    server_description: str | None = None

    def fields(self) -> dict[str, str | None]:
        data = asdict(self)
        del data["connector_id"]
        return data


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What ``sync`` changed, as ``(tenant, connector_id)`` pairs (tenant ``""`` = global)."""

    created: list[tuple[str, str]] = field(default_factory=list)
    updated: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    unchanged: list[tuple[str, str]] = field(default_factory=list)


def shadowed_ids(global_connectors: Iterable[Any], tenants: Mapping[str, Iterable[Any]]) -> dict[str, list[str]]:
    """Tenant -> ids of its connectors that are also global ones (a tenant would see both, so this is
    refused). Takes anything with a ``connector_id``."""
    global_ids = {c.connector_id for c in global_connectors}
    clashes = {
        tenant: sorted(global_ids & {c.connector_id for c in connectors}) for tenant, connectors in tenants.items()
    }
    return {tenant: ids for tenant, ids in clashes.items() if ids}


class ConnectorService:
    """Reads for users (``list``, ``get``) and the start-up ``sync`` of the configured connectors."""

    collections = (CONNECTORS,)

    def __init__(self, store: AccessControlledStore):
        if store.collection.name != CONNECTORS.name:
            raise ValueError(f"ConnectorService needs a store of collection {CONNECTORS.name!r}")
        self.store = store

    @classmethod
    async def open(cls, open_store: Callable[[CollectionSpec], Awaitable[AccessControlledStore]]) -> ConnectorService:
        return cls(await open_store(CONNECTORS))

    async def list(self) -> list[ConnectorRecord]:
        """Every connector the caller may read (global and their tenant's), by id."""
        return [self._record(row) async for row in self._rows()]

    async def get(self, connector_id: str) -> ConnectorRecord:
        row = await self.store.get(connector_id)
        if row is None:
            raise ConnectorNotFound(connector_id)
        return self._record(row)

    async def sync(
        self, global_connectors: Sequence[ConnectorRecord], tenants: Mapping[str, Sequence[ConnectorRecord]]
    ) -> SyncReport:
        """Make the stored connectors exactly the configured ones, in the system context.

        Connectors of tenants no longer configured, and global ones no longer listed, are removed
        (OGX removes unlisted connectors at start-up too). Removals come first, so a connector id
        moved from global to a tenant (or back) never exists twice.
        """
        for tenant, ids in shadowed_ids(global_connectors, tenants).items():
            raise InvalidRequest(
                f"tenant {tenant!r} declares connector id(s) {ids} that are global ones", param="tenants"
            )
        wanted: dict[tuple[str, str], ConnectorRecord] = {(GLOBAL, c.connector_id): c for c in global_connectors}
        for tenant, connectors in tenants.items():
            wanted |= {(tenant, c.connector_id): c for c in connectors}
        report = SyncReport()
        with system_context("start-up connector registration"):
            existing = {(row.tenant_id, row.id): row async for row in self._rows()}
        for key, row in existing.items():
            if key not in wanted:
                with system_context("remove a connector no longer configured", tenant_id=key[0]):
                    await self.store.delete(row.id)
                report.removed.append(key)
        for key, connector in wanted.items():
            tenant, connector_id = key
            with system_context("start-up connector registration", tenant_id=tenant):
                row = existing.get(key)
                if row is None:
                    await self.store.create(connector_id, connector.fields())
                    report.created.append(key)
                elif self._record(row) != connector:
                    await self.store.update(connector_id, connector.fields())
                    report.updated.append(key)
                else:
                    report.unchanged.append(key)
        log.info(
            "connectors registered",
            created=len(report.created),
            updated=len(report.updated),
            removed=len(report.removed),
            unchanged=len(report.unchanged),
        )
        return report

    async def restore(self, connector: ConnectorRecord, tenant_id: str) -> bool:
        """Write one connector of ``tenant_id`` (``""`` = global) as given. Only in a system context
        (migrations). False, changing nothing, when the id exists in that tenant or globally."""
        require_system_context("restore a connector")
        with system_context("migration: restore a connector", tenant_id=tenant_id):
            if await self.store.get(connector.connector_id) is not None:
                return False
            await self.store.create(connector.connector_id, connector.fields())
        return True

    async def export(self, connector_id: str, tenant_id: str) -> ConnectorRecord | None:
        """The connector of ``tenant_id`` as stored, or None (system context only)."""
        require_system_context("export a connector")
        with system_context("migration: read back a connector", tenant_id=tenant_id):
            row = await self.store.get(connector_id)
        return self._record(row) if row is not None and row.tenant_id == tenant_id else None

    async def _rows(self) -> AsyncIterator[Row]:
        cursor = None
        while True:
            page = await self.store.list(limit=_PAGE, cursor=cursor)
            for row in page.data:
                yield row
            if not page.has_more:
                return
            cursor = page.next_cursor

    @staticmethod
    def _record(row: Row) -> ConnectorRecord:
        return ConnectorRecord(
            connector_id=row.id,
            url=row["url"],
            connector_type=row["connector_type"],
            server_label=row["server_label"],
            server_name=row["server_name"],
            server_description=row["server_description"],
        )
