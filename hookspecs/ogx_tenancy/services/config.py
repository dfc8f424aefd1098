"""The ``tenancy.services`` section: which resource services replace OGX's built-ins.

```yaml
tenancy:
  storage: {backend: sqlite, config: {path: /var/lib/ogx/tenancy.db}}
  services:
    prompts: {}                 # /v1/prompts served from our store
    connectors:                 # /v1alpha/admin/connectors* and connector lookups from our store
      tenants:                  # connectors only one tenant sees (OGX's top-level `connectors:` are global)
        acme:
          - {connector_id: acme-wiki, url: "http://wiki.acme.internal/mcp", server_label: wiki}
    batches:                    # /v1/batches from our store, processed as the batch's creator
      max_concurrent_batches: 2
```

Naming a service turns it on (``prompts: {}``, ``prompts: true`` or an empty ``prompts:``);
``enabled: false`` or leaving it out keeps OGX's built-in. Every enabled service needs
``tenancy.storage``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Service(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="serve this API from the tenancy store")


class PromptsServiceSettings(_Service):
    """Prompts: OGX's Prompts API on our store (one head row per prompt holds the default)."""


class ConnectorSettings(BaseModel):
    """One connector, with the fields of OGX's top-level ``connectors:`` entries."""

    model_config = ConfigDict(extra="forbid")
    connector_id: str = Field(min_length=1)
    connector_type: Literal["mcp"] = "mcp"
    url: str = Field(min_length=1)
    server_label: str | None = None


class ConnectorsServiceSettings(_Service):
    """Connectors: every connector endpoint from our store; per-tenant connectors from ``tenants``."""

    tenants: dict[str, list[ConnectorSettings]] = Field(
        default_factory=dict, description="tenant id -> connectors only that tenant's users see"
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> ConnectorsServiceSettings:
        for tenant, connectors in self.tenants.items():
            if not tenant:
                raise ValueError("tenant ids must be non-empty")
            ids = [c.connector_id for c in connectors]
            duplicated = sorted({i for i in ids if ids.count(i) > 1})
            if duplicated:
                raise ValueError(f"tenant {tenant!r} lists connector id(s) {duplicated} more than once")
        return self


class BatchesServiceSettings(_Service):
    """Batches: an OGX batches provider on our store (replaces ``inline::reference``)."""

    max_concurrent_batches: int = Field(default=1, ge=1, description="batches processed at once per process")
    max_concurrent_requests_per_batch: int = Field(default=10, ge=1, description="inference calls in flight per batch")


class ServicesSettings(BaseModel):
    """Which services run on the tenancy store. Absent = OGX's built-in stays."""

    model_config = ConfigDict(extra="forbid")
    prompts: PromptsServiceSettings | None = None
    connectors: ConnectorsServiceSettings | None = None
    batches: BatchesServiceSettings | None = None

    @field_validator("prompts", "connectors", "batches", mode="before")
    @classmethod
    def _named_means_enabled(cls, value: Any) -> Any:
        # `prompts:` (null) and `prompts: true` turn a service on; `false` leaves OGX's built-in
        if value is None or value is True:
            return {}
        if value is False:
            return {"enabled": False}
        return value

    def enabled(self) -> list[str]:
        """Names of the services turned on, in a fixed order."""
        return [
            name
            for name, service in (("prompts", self.prompts), ("connectors", self.connectors), ("batches", self.batches))
            if service is not None and service.enabled
        ]
