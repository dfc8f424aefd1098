"""The access-controlled store contract that storage backends implement and services build on.

A backend plugin registers a named ``StorageBackend`` through the ``ogx_tenancy_storage_backends``
hook. The host opens one backend from the ``tenancy.storage`` config and asks it for a store per
collection. Every store method decides access itself, from ``ogx_tenancy.context.current_actor()``:

* rows carry ``owner_principal``, ``access_attributes`` and ``tenant_id`` stamped from the actor,
  never from the data a client sent (those names, ``id`` and ``revision`` are ignored in data:
  ``without_reserved``); a row's ``tenant_id`` is ``""`` for a global row;
* the tenant partition (``policy.tenant_partition``) is applied before any rule;
* every action — create included — is decided by ``Policy`` with OGX's semantics; rows of table
  ``T`` are resources of type ``sql_record::T`` with their ``id`` as identifier;
* no actor means deny; ``system_context`` allows everything and may set owners explicitly;
* ``list`` returns complete pages with an exact ``has_more`` whatever the policy; a cursor resumes
  after the last row returned, stable under concurrent inserts and deletes.

Rows are identified by ``id`` within a tenant: two tenants may hold the same id without seeing
each other (so an id is never an oracle across tenants).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from .policy import Policy

FieldType = Literal["str", "int", "float", "bool", "json"]

# Column names the store owns: a collection may not declare them, and in the data given to create or
# update they are ignored (the store stamps them from the actor, never from data a client sent).
RESERVED_FIELDS = frozenset({"id", "owner_principal", "access_attributes", "tenant_id", "revision"})


def without_reserved(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` minus the ``RESERVED_FIELDS``: what every store keeps of the data it is given."""
    return {key: value for key, value in data.items() if key not in RESERVED_FIELDS}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a collection.

    :param name: the field name (not one of ``RESERVED_FIELDS``).
    :param type: ``str``, ``int``, ``float``, ``bool`` or ``json`` (any JSON value).
    :param indexed: filters and ordering on it should be served by an index.
    """

    name: str
    type: FieldType
    indexed: bool = False


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """What a service stores: a name (the table, and the ``sql_record::<name>`` resource type),
    its fields, and field groups that must be unique *within a tenant*.
    """

    name: str
    fields: tuple[FieldSpec, ...]
    unique: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        clash = RESERVED_FIELDS.intersection(names)
        if clash:
            raise ValueError(f"collection {self.name!r} declares reserved field(s) {sorted(clash)}")
        if len(set(names)) != len(names):
            raise ValueError(f"collection {self.name!r} declares a field twice")
        for group in self.unique:
            unknown = set(group) - set(names)
            if unknown:
                raise ValueError(f"collection {self.name!r}: unique group names unknown field(s) {sorted(unknown)}")

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a row belongs to. Only a system context may give a row an owner other than the actor."""

    principal: str | None
    attributes: Mapping[str, Sequence[str]] | None = None
    tenant_id: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One stored row: its id, its fields, and the access-control columns the store stamped."""

    id: str
    data: Mapping[str, Any]
    owner_principal: str | None
    access_attributes: Mapping[str, Sequence[str]] | None
    tenant_id: str
    revision: int

    def __getitem__(self, name: str) -> Any:
        return self.data[name]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing.

    :param data: the rows, at most ``limit`` of them, all readable by the caller.
    :param has_more: True exactly when a further readable row exists after this page.
    :param next_cursor: pass it as ``cursor`` to get the next page; None when ``has_more`` is False.
    """

    data: list[Row]
    has_more: bool
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class StoreCapabilities:
    """What a store declares about itself (the conformance suite reads it; nothing is guessed).

    :param transactions: ``transaction()`` makes the enclosed calls atomic.
    :param concurrent_processes: several processes may use one database safely (no lost update).
    :param pushdown: policy atoms it evaluates in the database (names of ``policy`` Expr classes);
        the rest it evaluates in Python, still returning complete pages.
    :param persistent: data survives a restart of the process.
    """

    transactions: bool = True
    concurrent_processes: bool = False
    pushdown: frozenset[str] = field(default_factory=frozenset)
    persistent: bool = True


class AccessDenied(Exception):
    """The actor may not perform this action. The message names the action and row id only."""

    status = 403


class RowNotFound(Exception):
    """No such row, or one the actor may not read (the two are never told apart)."""

    status = 404


class RowConflict(Exception):
    """The id or a unique field group already exists in the tenant, or ``expected_revision`` is stale."""

    status = 409


class InvalidRowData(ValueError):
    """Row data names an unknown field, a filter names anything but a declared field, or a value has
    the wrong type."""

    status = 400


@runtime_checkable
class AccessControlledStore(Protocol):
    """One collection with row-level access control. All methods read the current actor."""

    collection: CollectionSpec
    policy: Policy
    capabilities: StoreCapabilities

    async def create(self, id: str, data: Mapping[str, Any], *, owner: Owner | None = None) -> Row:
        """Insert a row owned by the actor (``create`` permission on the row as it would be stored).

        ``owner`` is honoured only in a system context. Raises ``AccessDenied``, ``RowConflict``
        (id or unique group taken in this tenant), ``InvalidRowData``.
        """
        ...

    async def get(self, id: str) -> Row | None:
        """The row with ``id`` in the actor's partition if the actor may read it, else None.

        An id may exist both in the actor's tenant and among the global rows: the tenant's row is
        tried first, then the global one; the first the actor may read is returned (``update`` and
        ``delete`` address the same row). A system context without a tenant addresses global rows.
        """
        ...

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
        """A page of the rows the actor may perform ``action`` on, filtered by field equality.

        Read permission is required as well for every action: a caller never sees or changes a row
        it cannot read.

        Ordered by ``order_by`` (default: ``id``) then ``id``; ``limit`` >= 1.
        """
        ...

    async def update(self, id: str, changes: Mapping[str, Any], *, expected_revision: int | None = None) -> Row:
        """Change fields of one row (``update`` permission); bumps ``revision``.

        Raises ``RowNotFound`` (missing or unreadable), ``AccessDenied`` (readable, not updatable),
        ``RowConflict`` (``expected_revision`` given and stale, or a unique group taken).
        """
        ...

    async def update_where(self, where: Mapping[str, Any], changes: Mapping[str, Any]) -> int:
        """Change every row matching ``where`` that the actor may read and update; returns how many."""
        ...

    async def delete(self, id: str) -> bool:
        """Delete one row (``delete`` permission). False when missing or unreadable; ``AccessDenied``
        when readable but not deletable."""
        ...

    async def delete_where(self, where: Mapping[str, Any]) -> int:
        """Delete every row matching ``where`` that the actor may read and delete; returns how many."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """Make the enclosed calls on this store (and others of the same backend) atomic."""
        ...


class StorageBackend(Protocol):
    """An opened database: hands out stores per collection and is closed at shutdown."""

    async def open_store(self, collection: CollectionSpec, policy: Policy) -> AccessControlledStore:
        """Create or upgrade the collection's schema, then return its store."""
        ...

    async def close(self) -> None: ...


BackendFactory = Callable[[BaseModel], Awaitable[StorageBackend]]


@dataclass(frozen=True, slots=True)
class BackendRegistration:
    """A backend a plugin registered: its name, config model and factory."""

    name: str
    config_model: type[BaseModel]
    factory: BackendFactory
    plugin: str


class BackendRegistrar(Protocol):
    """The ``register`` callback handed to ``ogx_tenancy_storage_backends``."""

    def __call__(self, name: str, config_model: type[BaseModel], factory: BackendFactory) -> None: ...
