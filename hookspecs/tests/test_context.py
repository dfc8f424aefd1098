from __future__ import annotations

import asyncio

import pytest

from ogx_tenancy import context
from ogx_tenancy.context import SystemContext, acting_as, current_actor, current_identity, system_context
from ogx_tenancy.types import Identity


def test_nothing_by_default():
    assert current_actor() is None and current_identity() is None


def test_acting_as_and_system_context_nest_and_restore():
    alice = Identity("alice")
    with acting_as(alice):
        assert current_identity() == alice
        with system_context("startup registration") as system:
            assert current_actor() == system and current_identity() is None
        assert current_identity() == alice
    assert current_actor() is None


def test_system_context_needs_a_reason_and_acting_as_a_principal():
    with pytest.raises(ValueError), system_context("  "):
        pass
    with pytest.raises(TypeError), acting_as(Identity(None, {"teams": ["x"]})):
        pass


async def test_concurrent_tasks_never_see_each_others_identity():
    async def serve(n: int) -> list[str]:
        seen = []
        with acting_as(Identity(f"user{n}")):
            for _ in range(5):
                await asyncio.sleep(0)
                seen.append(current_identity().principal)
        return seen

    results = await asyncio.gather(*(serve(n) for n in range(50)))
    for n, seen in enumerate(results):
        assert seen == [f"user{n}"] * 5


async def test_tasks_spawned_in_a_request_keep_its_identity():
    async def background() -> str | None:
        await asyncio.sleep(0)
        identity = current_identity()
        return identity.principal if identity else None

    with acting_as(Identity("creator")):
        task = asyncio.create_task(background())
    assert await task == "creator"


def test_fallback_source_is_consulted_only_when_nothing_is_set():
    context.set_fallback_identity_source(lambda: Identity("from-ogx"))
    try:
        assert current_identity() == Identity("from-ogx")
        with acting_as(Identity("alice")):
            assert current_identity() == Identity("alice")
        with system_context("job"):
            assert isinstance(current_actor(), SystemContext)
    finally:
        context.set_fallback_identity_source(None)
    assert current_actor() is None
