"""An OGX external batches provider whose batches live in ``BatchService`` (our store).

Loaded through OGX's ``module:`` mechanism: the generated ``providers.batches`` entry says
``module: ogx_tenancy.adapter``, so OGX imports ``ogx_tenancy.adapter.provider`` and calls
``get_provider_spec()`` (``ogx.core.distribution.get_external_providers_from_module``), whose spec
points here.

Processing is OGX's reference implementation (``ReferenceBatchesImpl``: input validation, inference
calls through OGX's inference router, output and error files through the Files API), unchanged;
every place it stores or reads a batch is overridden to use ``BatchService``:

* create / retrieve / list / cancel run as the caller, so they are isolated by the store's policy
  and tenant partition, and idempotency keys are per caller (``services/batches.py``);
* processing runs in a task started inside the creating request, so it keeps the creator's
  identity — OGX's authenticated user and provider data, and our current actor — and every
  inference call it makes carries the creator's outgoing headers;
* the processor's own reads and status updates are bookkeeping, done in a system context bounded
  to the batch's tenant (``BatchService.get_for_processing`` / ``record_progress``), so they work
  whatever the policy lets the creator do after creating.

Like OGX's reference provider, a batch interrupted by a restart is not resumed.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Any

import structlog
from ogx.core.access_control.route_access import is_route_allowed
from ogx.core.request_headers import get_authenticated_user
from ogx.providers.inline.batches.reference.batches import ReferenceBatchesImpl
from ogx_api import (
    Api,
    BatchNotFoundError,
    BatchObject,
    InlineProviderSpec,
    ListBatchesResponse,
    ProviderSpec,
    RouteAccessDeniedError,
)
from ogx_api.batches.models import CancelBatchRequest, CreateBatchRequest, ListBatchesRequest, RetrieveBatchRequest
from pydantic import BaseModel, ConfigDict, Field

from ogx_tenancy import host
from ogx_tenancy.services.batches import BatchRecord, BatchService

from .service_errors import ogx_errors

log = structlog.get_logger("ogx_tenancy.adapter.batches")

PROVIDER_TYPE = "inline::ogx-tenancy"

# Set inside a batch's processing task (and the tasks it spawns): the batch it is processing.
_processing: contextvars.ContextVar[str | None] = contextvars.ContextVar("ogx_tenancy_batch", default=None)


class TenancyBatchesConfig(BaseModel):
    """The provider's config (the wiring copies ``tenancy.services.batches`` here)."""

    model_config = ConfigDict(extra="forbid")
    max_concurrent_batches: int = Field(default=1, ge=1)
    max_concurrent_requests_per_batch: int = Field(default=10, ge=1)


def provider_spec() -> ProviderSpec:
    return InlineProviderSpec(
        api=Api.batches,
        provider_type=PROVIDER_TYPE,
        module=__name__,
        config_class=f"{__name__}.TenancyBatchesConfig",
        api_dependencies=[Api.inference, Api.files, Api.models],
        description="OpenAI batches on the ogx-tenancy store, processed as the batch's creator.",
    )


async def get_provider_impl(
    config: TenancyBatchesConfig, deps: dict[Api, Any], policy: list[Any], route_policy: list[Any]
) -> TenancyBatches:
    service = await BatchService.open(host.open_store)
    return TenancyBatches(config, deps[Api.inference], deps[Api.files], deps[Api.models], service, route_policy)


def _batch(record: BatchRecord) -> BatchObject:
    return BatchObject.model_validate(record.batch)


class TenancyBatches(ReferenceBatchesImpl):
    """OGX's reference batches processing on ``BatchService`` storage."""

    def __init__(
        self,
        config: TenancyBatchesConfig,
        inference_api: Any,
        files_api: Any,
        models_api: Any,
        service: BatchService,
        route_policy: list[Any] | None = None,
    ) -> None:
        super().__init__(config, inference_api, files_api, models_api, None, route_policy)  # type: ignore[arg-type]
        self.service = service
        self._tenants: dict[str, str] = {}  # batch id -> tenant, while its processing task runs

    async def initialize(self) -> None:
        pass  # no OGX table: batches live in the tenancy store

    async def create_batch(self, request: CreateBatchRequest) -> BatchObject:
        # Batch processing calls inference in-process, past OGX's route authorization: check the
        # batch's endpoint against route_policy once here, as OGX's reference provider does.
        if not is_route_allowed(request.endpoint, get_authenticated_user(), self.route_policy):
            raise RouteAccessDeniedError(request.endpoint)
        with ogx_errors():
            record, created = await self.service.create(
                input_file_id=request.input_file_id,
                endpoint=request.endpoint,
                completion_window=request.completion_window,
                metadata=request.metadata,
                idempotency_key=request.idempotency_key,
            )
        if created and self.process_batches:
            self._tenants[record.id] = record.tenant_id
            # created here, the task copies this request's context: the creator's identity
            task = asyncio.create_task(self._run(record.id))
            task.add_done_callback(lambda done, batch_id=record.id: self._finished(batch_id, done))
            self._processing_tasks[record.id] = task
        return _batch(record)

    async def _run(self, batch_id: str) -> None:
        _processing.set(batch_id)
        await self._process_batch(batch_id)

    def _finished(self, batch_id: str, task: asyncio.Task[None]) -> None:
        self._processing_tasks.pop(batch_id, None)
        tenant = self._tenants.pop(batch_id, None)
        if task.cancelled() and tenant is not None:
            # cancelled before it started: the reference's handler that records "cancelled" never ran
            update = {"status": "cancelled", "cancelled_at": int(time.time())}
            asyncio.get_running_loop().create_task(self.service.record_progress(batch_id, tenant, update))

    async def retrieve_batch(self, request: RetrieveBatchRequest) -> BatchObject:
        with ogx_errors():
            if _processing.get() == request.batch_id and request.batch_id in self._tenants:
                return _batch(await self.service.get_for_processing(request.batch_id, self._tenants[request.batch_id]))
            return _batch(await self.service.get(request.batch_id))

    async def list_batches(self, request: ListBatchesRequest) -> ListBatchesResponse:
        with ogx_errors():
            page = await self.service.list(after=request.after, limit=request.limit)
        data = [BatchObject.model_validate(b) for b in page.data]
        return ListBatchesResponse(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=page.has_more,
        )

    async def cancel_batch(self, request: CancelBatchRequest) -> BatchObject:
        with ogx_errors():
            record = await self.service.cancel(request.batch_id)
        task = self._processing_tasks.get(request.batch_id)
        if task is not None and record.status == "cancelling":
            task.cancel()  # its CancelledError handler records "cancelled"
        return _batch(record)

    async def _update_batch(self, batch_id: str, **updates: Any) -> None:
        """The reference processor's progress reports, recorded as bookkeeping (see module doc)."""
        tenant = self._tenants.get(batch_id)
        if tenant is None:
            log.error("progress for a batch not being processed here", batch_id=batch_id)
            return
        if "errors" in updates and hasattr(updates["errors"], "model_dump"):
            updates["errors"] = updates["errors"].model_dump()
        try:
            stored = await self.service.record_progress(batch_id, tenant, updates)
        except Exception as e:  # noqa: BLE001 - like the reference: a failed update must not kill processing
            log.error("failed to record batch progress", batch_id=batch_id, error=str(e))
            return
        task = self._processing_tasks.get(batch_id)
        if stored is not None and stored.status == "cancelling" and task is not None and not task.done():
            # cancelled through another server process: stop here too (the handler records "cancelled")
            task.cancel()


__all__ = ["PROVIDER_TYPE", "BatchNotFoundError", "TenancyBatches", "get_provider_impl", "provider_spec"]
