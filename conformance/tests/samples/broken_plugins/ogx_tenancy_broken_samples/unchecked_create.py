"""A store that never asks the policy before creating a row."""

from __future__ import annotations

from ogx_tenancy_sample_third_party.conformance import AcmeStorageHarness
from ogx_tenancy_sample_third_party.store import MemoryBackend, MemoryBackendConfig, MemoryStore, StoredRow

from ogx_tenancy import hookimpl
from ogx_tenancy.context import Actor
from ogx_tenancy_conformance import ConformanceProfile


class UncheckedStore(MemoryStore):
    def _check_create(self, actor: Actor | None, row: StoredRow) -> None:
        return  # THE DEFECT: create is not decided by the policy


class UncheckedBackend(MemoryBackend):
    async def open_store(self, collection, policy):
        self.tables.setdefault(collection.name, {})
        return UncheckedStore(self, collection, policy)


async def open_unchecked_backend(config: MemoryBackendConfig) -> UncheckedBackend:
    return UncheckedBackend()


@hookimpl
def ogx_tenancy_storage_backends(register) -> None:
    register("acme-memory", MemoryBackendConfig, open_unchecked_backend)


class Harness(AcmeStorageHarness):
    settings = {}


class Profile(ConformanceProfile):
    storage = Harness
