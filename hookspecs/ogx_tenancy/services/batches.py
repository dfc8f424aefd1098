"""Batch records on the store contract: creation with per-caller idempotency keys, isolated
retrieve / list / cancel, and the bookkeeping a batch processor does.

A batch is stored as the OpenAI batch object (a JSON mapping: ``id``, ``status``, ``endpoint``,
``input_file_id``, ``request_counts``, …) in the ``batches`` collection (OGX's table name), with
``status`` and ``created_at`` copied into indexed fields. The service does not run batches: a
processor (the OGX adapter) does, as the batch's creator, and reports progress with
``record_progress``, which is bookkeeping the system does for the batch and therefore runs in a
system context bounded to the batch's tenant.

Idempotency keys belong to the caller — their tenant and principal. The batch id of an idempotent
request is derived from (tenant, principal, key), so the same key from two tenants (or two users)
makes two batches, and a key never reveals whether someone else used it. Retrying with the same
key returns the same batch; reusing it with different parameters is a 409.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from ..context import current_actor, system_context
from ..store import AccessControlledStore, CollectionSpec, FieldSpec, Owner, Row, RowConflict
from . import Conflict, InvalidRequest, NotFound, require_system_context

log = structlog.get_logger("ogx_tenancy.services.batches")

BATCHES = CollectionSpec(
    name="batches",
    fields=(
        FieldSpec("created_at", "int", indexed=True),
        FieldSpec("status", "str", indexed=True),
        FieldSpec("batch", "json"),
    ),
)

SUPPORTED_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
COMPLETION_WINDOWS = ("24h",)
FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
_RETRIES = 20
_PAGE = 100


class BatchNotFound(NotFound):
    def __init__(self, batch_id: str):
        super().__init__(f"Batch '{batch_id}' not found")
        self.batch_id = batch_id


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A stored batch: the OpenAI batch object and the tenant it belongs to."""

    batch: dict[str, Any]
    tenant_id: str

    @property
    def id(self) -> str:
        return self.batch["id"]

    @property
    def status(self) -> str:
        return self.batch["status"]


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch with its owner, for migrations (``owner.tenant_id`` is its tenant, ``""`` = global)."""

    batch: dict[str, Any]
    owner: Owner


@dataclass(frozen=True, slots=True)
class BatchPage:
    """One page of ``list``: the batches, and whether more follow."""

    data: list[dict[str, Any]]
    has_more: bool


def idempotent_batch_id(tenant_id: str | None, principal: str | None, key: str) -> str:
    """The batch id an idempotency key maps to for one caller (NUL-separated, so parts cannot blur)."""
    digest = hashlib.sha256("\0".join((tenant_id or "", principal or "", key)).encode("utf-8")).hexdigest()
    return f"batch_{digest[:24]}"


class BatchService:
    """Batches for the calling user, and progress bookkeeping for the processor."""

    collections = (BATCHES,)

    def __init__(self, store: AccessControlledStore):
        if store.collection.name != BATCHES.name:
            raise ValueError(f"BatchService needs a store of collection {BATCHES.name!r}")
        self.store = store

    @classmethod
    async def open(cls, open_store: Callable[[CollectionSpec], Awaitable[AccessControlledStore]]) -> BatchService:
        return cls(await open_store(BATCHES))

    # -- the caller's batches -------------------------------------------------------------------

    async def create(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[BatchRecord, bool]:
        """Record a new batch in ``validating`` state, owned by the caller.

        :returns: the batch and whether it was created (False: an idempotent retry).
        :raises InvalidRequest: unsupported endpoint or completion window.
        :raises Conflict: the idempotency key was used with different parameters.
        """
        if endpoint not in SUPPORTED_ENDPOINTS:
            raise InvalidRequest(
                f"Invalid endpoint: {endpoint}. Supported values: {', '.join(SUPPORTED_ENDPOINTS)}", param="endpoint"
            )
        if completion_window not in COMPLETION_WINDOWS:
            raise InvalidRequest(
                f"Invalid completion_window: {completion_window}. Supported values are: 24h",
                param="completion_window",
            )
        if idempotency_key is not None and not idempotency_key:
            raise InvalidRequest("idempotency_key must not be empty", param="idempotency_key")
        actor = current_actor()
        if idempotency_key is None:
            batch_id = f"batch_{uuid.uuid4().hex[:16]}"
        else:
            batch_id = idempotent_batch_id(
                actor.tenant_id if actor else None, getattr(actor, "principal", None), idempotency_key
            )
        now = int(time.time())
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": endpoint,
            "input_file_id": input_file_id,
            "completion_window": completion_window,
            "status": "validating",
            "created_at": now,
            "metadata": dict(metadata) if metadata is not None else None,
        }
        try:
            row = await self.store.create(batch_id, {"created_at": now, "status": "validating", "batch": batch})
        except RowConflict:
            if idempotency_key is None:
                raise
            return self._idempotent_retry(await self.store.get(batch_id), batch), False
        log.info("batch created", batch_id=batch_id)
        return BatchRecord(dict(row["batch"]), row.tenant_id), True

    async def get(self, batch_id: str) -> BatchRecord:
        row = await self.store.get(batch_id)
        if row is None:
            raise BatchNotFound(batch_id)
        return BatchRecord(dict(row["batch"]), row.tenant_id)

    async def list(self, *, after: str | None = None, limit: int = 20) -> BatchPage:
        """The caller's readable batches, newest first; ``after`` is the id the previous page ended at.

        An ``after`` the caller cannot see starts from the beginning (as OGX does).
        """
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise InvalidRequest("limit must be between 1 and 100", param="limit")
        skipping = after is not None
        if skipping and await self.store.get(after) is None:
            skipping = False
        collected: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.store.list(order_by="created_at", descending=True, limit=_PAGE, cursor=cursor)
            for row in page.data:
                if skipping:
                    skipping = row.id != after
                    continue
                if len(collected) == limit:
                    return BatchPage(collected, has_more=True)
                collected.append(dict(row["batch"]))
            if not page.has_more:
                return BatchPage(collected, has_more=False)
            cursor = page.next_cursor

    async def cancel(self, batch_id: str) -> BatchRecord:
        """Move a running batch to ``cancelling`` (needs ``update`` on it); final batches are a 409."""
        for _ in range(_RETRIES):
            row = await self.store.get(batch_id)
            if row is None:
                raise BatchNotFound(batch_id)
            batch = dict(row["batch"])
            if batch["status"] in ("cancelling", "cancelled"):
                return BatchRecord(batch, row.tenant_id)
            if batch["status"] in FINAL_STATUSES:
                raise Conflict(f"Cannot cancel batch '{batch_id}' with status '{batch['status']}'")
            batch |= {"status": "cancelling", "cancelling_at": int(time.time())}
            try:
                row = await self.store.update(
                    batch_id, {"status": "cancelling", "batch": batch}, expected_revision=row.revision
                )
            except RowConflict:
                continue  # the processor moved it on meanwhile: decide again on the fresh state
            log.info("batch cancelling", batch_id=batch_id)
            return BatchRecord(dict(row["batch"]), row.tenant_id)
        raise Conflict(f"Batch '{batch_id}' is changing too fast to cancel; retry")

    # -- the processor's bookkeeping ------------------------------------------------------------

    async def get_for_processing(self, batch_id: str, tenant_id: str) -> BatchRecord:
        """The batch as the processor sees it, whoever may read it now."""
        with system_context("batch processing", tenant_id=tenant_id):
            return await self.get(batch_id)

    async def record_progress(self, batch_id: str, tenant_id: str, updates: Mapping[str, Any]) -> BatchRecord | None:
        """Merge ``updates`` into the batch object (status, counts, file ids, errors, timestamps).

        Once a batch is ``cancelling`` only the move to ``cancelled`` is recorded, and a final status
        never changes. Returns the stored batch, or None when it no longer exists.
        """
        with system_context("batch processing", tenant_id=tenant_id):
            for _ in range(_RETRIES):
                row = await self.store.get(batch_id)
                if row is None:
                    return None
                batch = dict(row["batch"])
                status = updates.get("status")
                if batch["status"] in FINAL_STATUSES or (batch["status"] == "cancelling" and status != "cancelled"):
                    log.info("progress not recorded", batch_id=batch_id, status=batch["status"], attempted=status)
                    return BatchRecord(batch, row.tenant_id)
                batch |= dict(updates)
                try:
                    row = await self.store.update(
                        batch_id, {"status": batch["status"], "batch": batch}, expected_revision=row.revision
                    )
                except RowConflict:
                    continue  # a cancel landed meanwhile: re-apply the rules to the fresh state
                return BatchRecord(dict(row["batch"]), row.tenant_id)
        raise Conflict(f"Batch '{batch_id}' is changing too fast to record progress")

    # -- migration ------------------------------------------------------------------------------

    async def restore(self, stored: StoredBatch) -> bool:
        """Write a batch object as given, with its owner and tenant. Only in a system context
        (migrations). False, changing nothing, when its id exists in that tenant (or globally)."""
        require_system_context("restore a batch")
        batch = stored.batch
        if not isinstance(batch.get("id"), str) or not batch["id"]:
            raise InvalidRequest("a batch needs an id", param="id")
        tenant = stored.owner.tenant_id or ""
        data = {
            "created_at": int(batch.get("created_at") or 0),
            "status": str(batch.get("status") or ""),
            "batch": dict(batch),
        }
        with system_context("migration: restore a batch", tenant_id=tenant):
            if await self.store.get(batch["id"]) is not None:
                return False
            owner = Owner(stored.owner.principal, stored.owner.attributes, tenant)
            await self.store.create(batch["id"], data, owner=owner)
        return True

    async def export(self, batch_id: str, tenant_id: str) -> StoredBatch | None:
        """The batch ``batch_id`` of tenant ``tenant_id`` as stored, or None (system context only)."""
        require_system_context("export a batch")
        with system_context("migration: read back a batch", tenant_id=tenant_id):
            row = await self.store.get(batch_id)
        if row is None or row.tenant_id != tenant_id:
            return None
        attributes = {k: list(v) for k, v in row.access_attributes.items()} if row.access_attributes else None
        return StoredBatch(dict(row["batch"]), Owner(row.owner_principal, attributes, row.tenant_id))

    # -- internals ------------------------------------------------------------------------------

    @staticmethod
    def _idempotent_retry(existing: Row | None, requested: Mapping[str, Any]) -> BatchRecord:
        if existing is None:
            # only this caller's key maps to this id; unreadable means the policy hides it from its owner
            raise Conflict("This idempotency key was already used; use a new one")
        batch = dict(existing["batch"])
        if any(batch.get(k) != requested[k] for k in ("input_file_id", "endpoint", "completion_window", "metadata")):
            raise Conflict(
                "This idempotency key was previously used with different parameters. Either use a new "
                "idempotency key or ensure all parameters match the original request."
            )
        log.info("idempotent batch retry", batch_id=batch["id"])
        return BatchRecord(batch, existing.tenant_id)
