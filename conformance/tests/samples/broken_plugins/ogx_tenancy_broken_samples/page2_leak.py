"""A store that forgets the tenant partition on every page after the first."""

from __future__ import annotations

from ogx_tenancy_sample_third_party.conformance import AcmeStorageHarness
from ogx_tenancy_sample_third_party.store import MemoryBackend, MemoryBackendConfig, MemoryStore, StoredRow

from ogx_tenancy import hookimpl
from ogx_tenancy.context import Actor
from ogx_tenancy_conformance import ConformanceProfile


class LeakyStore(MemoryStore):
    def _candidates(self, actor: Actor | None, action: str, cursor: str | None) -> list[StoredRow]:
        if cursor is None:
            return self._permitted(actor, action)
        # THE DEFECT: the policy's row filter without the tenant partition
        expr = self.policy.row_filter(action, self.resource_type, actor)
        return [r for r in self.rows.values() if expr.evaluate(r.facts())]


class LeakyBackend(MemoryBackend):
    async def open_store(self, collection, policy):
        self.tables.setdefault(collection.name, {})
        return LeakyStore(self, collection, policy)


async def open_leaky_backend(config: MemoryBackendConfig) -> LeakyBackend:
    return LeakyBackend()


@hookimpl
def ogx_tenancy_storage_backends(register) -> None:
    register("acme-memory", MemoryBackendConfig, open_leaky_backend)


class Harness(AcmeStorageHarness):
    settings = {}


class Profile(ConformanceProfile):
    storage = Harness
