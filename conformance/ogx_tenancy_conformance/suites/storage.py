"""The storage family: backends registered by ``ogx_tenancy_storage_backends`` and their stores.

Subclass ``StorageSuite``, set ``plugin_name`` and ``harness`` (a ``StorageHarness`` that yields a
fresh database's config)::

    class TestMyStore(StorageSuite):
        plugin_name = "my_store"
        harness = MyStoreHarness

Every test runs once per backend (``harness.backends``, or every backend the plugin registers).
Decisions are checked against the core's ``Policy`` — the same engine the host uses, itself checked
against OGX's ``is_action_allowed`` — on rows of two tenants, global rows, unowned rows and rows
whose ids repeat across tenants.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from ogx_tenancy import (
    AccessControlledStore,
    AccessDenied,
    CollectionSpec,
    FieldSpec,
    Identity,
    InvalidRowData,
    Owner,
    Page,
    Policy,
    Resource,
    Row,
    RowConflict,
    RowNotFound,
    StoreCapabilities,
    acting_as,
    system_context,
)
from ogx_tenancy.context import Actor
from ogx_tenancy.policy import record_type
from ogx_tenancy.store import BackendRegistration

from ..capabilities import capability
from ..discovery import DiscoveryError, register, validated_settings
from ..guarantees import (
    ATOMIC,
    COMPLETE_PAGES,
    DECLARED_CAPABILITIES,
    DURABLE,
    NO_ANONYMOUS_WRITE,
    NO_CONCURRENT_LEAK,
    OWNER_STAMPED,
    PLUGIN_LOADS,
    POLICY_DECIDES,
    SERVICES_ON_STORE,
    STORE_ERRORS,
    TENANT_ISOLATION,
    Clause,
)
from ..harness import ALICE, BOB, CAROL, DAVE, ERIN, FRANK, STANDARD_USERS, StorageHarness, TestUser
from ..marks import conformance_test
from ..runner import loop_runner
from ._base import PluginSuite, PluginUnderTest

ACTIONS = ("read", "update", "delete")
STORE_ERROR_TYPES = (AccessDenied, RowNotFound, RowConflict, InvalidRowData)


def items_collection(name: str) -> CollectionSpec:
    """The collection every test uses (a fresh name per test)."""
    return CollectionSpec(
        name=name,
        fields=(
            FieldSpec("slug", "str", indexed=True),
            FieldSpec("rank", "int", indexed=True),
            FieldSpec("score", "float"),
            FieldSpec("flag", "bool"),
            FieldSpec("meta", "json"),
        ),
        unique=(("slug",),),
    )


# Policies the decision tests run under, as functions of the collection name (resource scopes name it).
POLICIES: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    "default": lambda c: [],
    "owner-only": lambda c: [
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
    ],
    "team-read": lambda c: [
        {"permit": {"actions": ["read"]}, "when": "user in owners teams"},
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
    ],
    "writers-create": lambda c: [
        {"forbid": {"actions": ["create"]}, "unless": "user with writer-role in roles"},
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
        {"permit": {"actions": ["read"]}, "when": "resource is unowned"},
    ],
    "scoped": lambda c: [
        {"permit": {"actions": ["read"], "resource": f"sql_record::{c}::pub::*"}},
        {"forbid": {"actions": ["delete"]}, "unless": "user is owner"},
        {
            "permit": {"actions": ["read", "update"], "resource": f"regex:^sql_record::{c}::r0[0-4]"},
            "when": "user in owners teams",
        },
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
        {"permit": {"actions": ["read"]}, "when": "resource is unowned"},
    ],
}


@dataclass(frozen=True)
class Seed:
    """A row the suite stores through the system context, and knows everything about."""

    id: str
    tenant: str  # "" = global
    owner: TestUser | None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.id)

    def resource(self, collection: str) -> Resource:
        return Resource(
            record_type(collection),
            self.id,
            self.owner.principal if self.owner else None,
            {c: list(v) for c, v in self.owner.attributes.items()} if self.owner else None,
            self.tenant,
        )


def standard_seeds() -> list[Seed]:
    """Rows of both tenants and global rows, interleaved by id so every page boundary crosses tenants."""
    owners = [ALICE, BOB, CAROL, ERIN, DAVE, FRANK]
    seeds = []
    for i in range(18):
        owner = owners[i % len(owners)]
        seeds.append(
            Seed(
                f"r{i:03d}",
                owner.tenant_id or "",
                None if i % 7 == 3 else owner,
                {"slug": f"slug-{i:03d}", "rank": (i * 5) % 7, "score": i / 2, "flag": i % 2 == 0, "meta": {"n": i}},
            )
        )
    seeds += [
        Seed("pub::1", BOB.tenant_id or "", BOB, {"slug": "pub-1", "rank": 1}),
        Seed("pub::2", ALICE.tenant_id or "", ALICE, {"slug": "pub-2", "rank": 2}),
        Seed("same-id", ALICE.tenant_id or "", ALICE, {"slug": "same-alpha", "rank": 3}),
        Seed("same-id", BOB.tenant_id or "", BOB, {"slug": "same-beta", "rank": 3}),
        Seed("g-unowned", "", None, {"slug": "g-unowned", "rank": 4}),
    ]
    return seeds


def owner_of(seed: Seed) -> Owner | None:
    if seed.owner is None:
        return None
    return Owner(seed.owner.principal, {c: list(v) for c, v in seed.owner.attributes.items()}, seed.tenant or None)


def describe_actor(actor: Actor | None) -> str:
    if actor is None:
        return "no actor"
    if isinstance(actor, Identity):
        return f"{actor.principal!r} (tenant {actor.tenant_id or 'none'})"
    return f"system context {actor.reason!r}"


class StorageContext:
    """One opened backend of the plugin under test, for one test."""

    _counter = itertools.count()

    def __init__(self, target: PluginUnderTest, harness: StorageHarness, backend: str, workdir: Path):
        self.target = target
        self.harness = harness
        self.backend_name = backend
        self.workdir = workdir
        try:
            self.manager = register(target.plugin, target.name)
            validated_settings(self.manager, target.name, harness.settings)
            registrations = self.manager.storage_backends()
        except (DiscoveryError, ValueError) as e:
            raise PLUGIN_LOADS.fail(str(e)) from None
        if backend not in registrations:
            raise PLUGIN_LOADS.fail(
                f"plugin {target.name!r} registers no backend {backend!r} (it registers {sorted(registrations)})"
            )
        self.registration: BackendRegistration = registrations[backend]
        self.backend: Any = None
        self._config_cm: contextlib.AbstractAsyncContextManager[Mapping[str, Any]] | None = None
        self.config: Any = None

    async def open(self) -> None:
        self._config_cm = self.harness.backend_config(self.backend_name, self.workdir)
        raw = await self._config_cm.__aenter__()
        try:
            self.config = self.registration.config_model.model_validate(dict(raw))
        except ValidationError as e:
            raise PLUGIN_LOADS.fail(
                f"the harness's config for backend {self.backend_name!r} does not validate: {e}"
            ) from None
        self.backend = await self.registration.factory(self.config)

    async def reopen(self) -> None:
        """Close the backend and open it again from the same config (persistence tests)."""
        await self.backend.close()
        self.backend = await self.registration.factory(self.config)

    async def close(self) -> None:
        try:
            if self.backend is not None:
                await self.backend.close()
        finally:
            if self._config_cm is not None:
                await self._config_cm.__aexit__(None, None, None)

    def fresh_name(self, purpose: str) -> str:
        return f"conf_{purpose.replace('-', '_')}_{next(self._counter)}"

    async def store(self, purpose: str, policy: Policy | None = None, name: str | None = None) -> AccessControlledStore:
        name = name or self.fresh_name(purpose)
        return await self.backend.open_store(items_collection(name), policy or Policy.default())

    async def seeded(self, purpose: str, policy_name: str = "default", seeds: Sequence[Seed] | None = None) -> Seeded:
        name = self.fresh_name(purpose)
        policy = Policy.parse(POLICIES[policy_name](name))
        store = await self.store(purpose, policy, name)
        seeded = Seeded(store, name, policy, list(seeds if seeds is not None else standard_seeds()))
        for seed in seeded.seeds:
            await seeded.put(seed)
        return seeded


@dataclass
class Seeded:
    """A store filled with known rows, and the oracle for what each actor may do with them."""

    store: AccessControlledStore
    collection: str
    policy: Policy
    seeds: list[Seed]

    async def put(self, seed: Seed) -> Row:
        with system_context("conformance seeding", tenant_id=seed.tenant or None):
            return await self.store.create(seed.id, dict(seed.data), owner=owner_of(seed))

    def allowed(self, actor: Actor | None, action: str) -> set[tuple[str, str]]:
        return {s.key for s in self.seeds if self.policy.is_allowed(action, s.resource(self.collection), actor)}

    def seed(self, key: tuple[str, str]) -> Seed:
        return next(s for s in self.seeds if s.key == key)

    def visible_seed(self, actor: Identity, row_id: str) -> Seed | None:
        """The seed ``get(row_id)`` must return for ``actor``, if any (its own tenant's, else global)."""
        for tenant in (actor.tenant_id or "", ""):
            for s in self.seeds:
                if s.id == row_id and s.tenant == tenant:
                    return s if self.policy.is_allowed("read", s.resource(self.collection), actor) else None
        return None


def key_of(row: Row) -> tuple[str, str]:
    return (row.tenant_id, row.id)


async def all_pages(
    store: AccessControlledStore, *, limit: int, clause: Clause = COMPLETE_PAGES, who: str = "", **kwargs: Any
) -> list[Page]:
    """Every page of a listing, checking page sizes, has_more and cursors as it goes."""
    pages: list[Page] = []
    cursor = None
    for _ in range(10_000):
        page = await store.list(limit=limit, cursor=cursor, **kwargs)
        pages.append(page)
        where = f"page {len(pages)} (limit={limit}{', ' + str(kwargs) if kwargs else ''}) for {who}"
        COMPLETE_PAGES.require(len(page.data) <= limit, f"{where} returned {len(page.data)} rows")
        if not page.has_more:
            return pages
        COMPLETE_PAGES.require(
            len(page.data) == limit, f"{where} is short ({len(page.data)} rows) but says has_more=True"
        )
        COMPLETE_PAGES.require(page.next_cursor is not None, f"{where} says has_more=True without a next_cursor")
        cursor = page.next_cursor
    raise COMPLETE_PAGES.fail(f"listing for {who} did not end after 10000 pages")


def check_partition(rows: Iterable[Row], actor: Identity, where: str) -> None:
    allowed = {"", actor.tenant_id or ""}
    for row in rows:
        TENANT_ISOLATION.require(
            row.tenant_id in allowed,
            f"{where}: {describe_actor(actor)} received row {row.id!r} of tenant {row.tenant_id!r}",
        )


def users() -> list[Identity]:
    return [u.identity() for u in STANDARD_USERS]


class StorageSuite(PluginSuite):
    """Conformance tests for the backends of one storage plugin."""

    #: backend names to test when no harness says (empty: every backend the plugin registers)
    backends: ClassVar[tuple[str, ...]] = ()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "storage_backend_name" in metafunc.fixturenames:
            names = self.backend_names(metafunc.config)
            metafunc.parametrize("storage_backend_name", names, ids=names)
        if "policy_name" in metafunc.fixturenames:
            metafunc.parametrize("policy_name", list(POLICIES), ids=list(POLICIES))

    def backend_names(self, config: pytest.Config) -> list[str]:
        """The backends to run every test on: the harness's, or every one the plugin registers."""
        harness = self.harness_instance(config)
        if isinstance(harness, StorageHarness) and harness.backends:
            return list(harness.backends)
        if self.backends:
            return list(self.backends)
        try:
            target = self.plugin_under_test(config)
            return sorted(register(target.plugin, target.name).storage_backends()) or ["none-registered"]
        except (DiscoveryError, ValueError, pytest.fail.Exception):
            return ["unknown"]  # the storage fixture then fails with the reason

    def plugin_under_test(self, config: pytest.Config) -> PluginUnderTest:
        from ..discovery import load_target

        if not self.plugin_name:
            raise DiscoveryError("set plugin_name")
        target = load_target(self.plugin_name)
        return PluginUnderTest(target.name, target.plugin)

    @pytest.fixture
    def storage_harness(self, request: pytest.FixtureRequest) -> StorageHarness:
        harness = self.harness_instance(request.config)
        if not isinstance(harness, StorageHarness):
            pytest.fail(
                f"{type(self).__name__}: set harness = <your StorageHarness subclass> or override the "
                "storage_harness fixture",
                pytrace=False,
            )
        return harness

    @pytest.fixture
    def storage(
        self,
        conformance_plugin: PluginUnderTest,
        storage_harness: StorageHarness,
        storage_backend_name: str,
        tmp_path: Path,
    ) -> Iterable[StorageContext]:
        context = StorageContext(conformance_plugin, storage_harness, storage_backend_name, tmp_path)
        runner = loop_runner()
        runner.run(context.open())
        try:
            yield context
        finally:
            runner.run(context.close())

    # -- loading --------------------------------------------------------------------------------

    @conformance_test("storage.plugin-loads", PLUGIN_LOADS)
    async def test_plugin_loads(self, storage: StorageContext) -> None:
        """The backend registers with a pydantic config model, opens from the harness's config and
        hands out stores that implement the store protocol and declare ``StoreCapabilities``."""
        store = await storage.store("loads")
        PLUGIN_LOADS.require(
            isinstance(store, AccessControlledStore),
            f"open_store returned {type(store).__name__}, which lacks AccessControlledStore methods",
        )
        PLUGIN_LOADS.require(
            isinstance(store.capabilities, StoreCapabilities),
            f"store.capabilities is {type(store.capabilities).__name__}, not StoreCapabilities",
        )

    @conformance_test("storage.declared-capabilities", DECLARED_CAPABILITIES)
    async def test_declared_capabilities(self, storage: StorageContext) -> None:
        """The store declares exactly the capabilities the harness pins (so a change is noticed)."""
        pinned = storage.harness.expected_capabilities.get(storage.backend_name)
        if pinned is None:
            pytest.skip(
                f"the harness pins no capabilities for backend {storage.backend_name!r} "
                "(StorageHarness.expected_capabilities)"
            )
        store = await storage.store("caps")
        DECLARED_CAPABILITIES.require(
            store.capabilities == pinned, f"the store declares {store.capabilities}, the harness pins {pinned}"
        )

    # -- core guarantee: tenant isolation -----------------------------------------------------

    @conformance_test("storage.tenant-isolation-paging", TENANT_ISOLATION)
    async def test_tenant_isolation_paging(self, storage: StorageContext, policy_name: str) -> None:
        """Every page of every listing (limits 1, 3, 7; by id, by rank descending, filtered; for
        read, update and delete) holds only rows of the caller's tenant or global rows."""
        seeded = await storage.seeded("paging", policy_name)
        for identity, limit in itertools.product(users(), (1, 3, 7)):
            with acting_as(identity):
                for kwargs in (
                    {},
                    {"order_by": "rank", "descending": True},
                    {"where": {"flag": True}},
                    {"action": "update"},
                    {"action": "delete"},
                ):
                    pages = await all_pages(seeded.store, limit=limit, who=describe_actor(identity), **kwargs)
                    for number, page in enumerate(pages, 1):
                        check_partition(page.data, identity, f"page {number} (limit={limit}, {kwargs or 'by id'})")

    @conformance_test("storage.tenant-isolation-actions", TENANT_ISOLATION)
    async def test_tenant_isolation_actions(self, storage: StorageContext) -> None:
        """get, update, delete, update_where and delete_where never reach another tenant's row, even one
        with the same id; creating an id another tenant uses neither fails nor touches theirs."""
        seeded = await storage.seeded("actions")
        beta_only = [s for s in seeded.seeds if s.tenant == BOB.tenant_id and s.id != "same-id"]
        with acting_as(ALICE.identity()):
            for seed in beta_only:
                row = await seeded.store.get(seed.id)
                TENANT_ISOLATION.require(row is None, f"get({seed.id!r}) by alice returned a row of tenant-beta")
                with contextlib.suppress(*STORE_ERROR_TYPES):
                    await seeded.store.update(seed.id, {"score": -1.0})
                TENANT_ISOLATION.require(
                    not await _safe_delete(seeded.store, seed.id),
                    f"delete({seed.id!r}) by alice reported deleting a row of tenant-beta",
                )
            own = await seeded.store.get("same-id")
            TENANT_ISOLATION.require(
                own is not None and own.tenant_id == ALICE.tenant_id,
                f"get('same-id') by alice returned {own!r}, expected her own tenant's row",
            )
            await seeded.store.update("same-id", {"score": 42.0})
            await seeded.store.update_where({"rank": 3}, {"score": 43.0})
            await seeded.store.delete_where({"slug": "pub-1"})
            created = await seeded.store.create("pub::1", {"slug": "alice-pub-1", "rank": 9})
            TENANT_ISOLATION.require(
                created.tenant_id == ALICE.tenant_id, f"alice created 'pub::1' in tenant {created.tenant_id!r}"
            )
        with system_context("conformance check", tenant_id=BOB.tenant_id):
            for seed in [*beta_only, seeded.seed((BOB.tenant_id or "", "same-id"))]:
                row = await seeded.store.get(seed.id)
                TENANT_ISOLATION.require(row is not None, f"tenant-beta's row {seed.id!r} was deleted by alice")
                TENANT_ISOLATION.require(
                    row.data.get("score") == seed.data.get("score") and row.data.get("slug") == seed.data.get("slug"),
                    f"tenant-beta's row {seed.id!r} was changed by alice: {dict(row.data)}",
                )

    # -- policy decisions -----------------------------------------------------------------------

    @conformance_test("storage.policy-decides-reads", POLICY_DECIDES)
    async def test_policy_decides_reads(self, storage: StorageContext, policy_name: str) -> None:
        """``get`` and ``list(action=read|update|delete)`` return exactly the rows the policy allows
        each user (oracle: the core's Policy), including unowned and global rows."""
        seeded = await storage.seeded("reads", policy_name)
        for identity in users():
            with acting_as(identity):
                for action in ACTIONS:
                    pages = await all_pages(seeded.store, limit=4, action=action, who=describe_actor(identity))
                    rows = [r for p in pages for r in p.data]
                    check_partition(rows, identity, f"list(action={action!r})")
                    got, want = {key_of(r) for r in rows}, seeded.allowed(identity, action)
                    POLICY_DECIDES.require(
                        got == want and len(rows) == len(got),
                        f"policy {policy_name!r}, list(action={action!r}) for {describe_actor(identity)}: "
                        f"extra {sorted(got - want)}, missing {sorted(want - got)}, duplicates {len(rows) - len(got)}",
                    )
                for row_id in sorted({s.id for s in seeded.seeds}):
                    row = await seeded.store.get(row_id)
                    expected = seeded.visible_seed(identity, row_id)
                    if row is not None:
                        check_partition([row], identity, f"get({row_id!r})")
                    POLICY_DECIDES.require(
                        (row is None and expected is None)
                        or (row is not None and expected is not None and key_of(row) == expected.key),
                        f"policy {policy_name!r}, get({row_id!r}) for {describe_actor(identity)}: got "
                        f"{key_of(row) if row else None}, expected {expected.key if expected else None}",
                    )

    @conformance_test("storage.policy-decides-writes", POLICY_DECIDES)
    async def test_policy_decides_writes(self, storage: StorageContext, policy_name: str) -> None:
        """``update`` and ``delete`` of every row by every user: allowed ones succeed, readable but
        forbidden ones raise AccessDenied, unreadable ones look missing — and nothing else changes."""
        seeded = await storage.seeded("writes", policy_name)
        for identity in users():
            for row_id in sorted({s.id for s in seeded.seeds}):
                target = _own_tenant_first(seeded, identity, row_id)
                readable = target is not None and seeded.policy.is_allowed(
                    "read", target.resource(seeded.collection), identity
                )
                for action in ("update", "delete"):
                    allowed = readable and seeded.policy.is_allowed(
                        action, target.resource(seeded.collection), identity
                    )
                    with acting_as(identity):
                        outcome = await _attempt(seeded.store, action, row_id)
                    expected = "ok" if allowed else ("denied" if readable else "missing")
                    POLICY_DECIDES.require(
                        outcome == expected,
                        f"policy {policy_name!r}: {action} of {row_id!r} by {describe_actor(identity)} -> {outcome}, "
                        f"expected {expected}",
                    )
                    if outcome == "ok" and action == "delete":
                        await seeded.put(target)  # restore for the next user

    @conformance_test("storage.create-is-checked", POLICY_DECIDES)
    async def test_create_is_checked(self, storage: StorageContext, policy_name: str) -> None:
        """``create`` is decided by the policy on the row as it would be stored: a user the policy
        does not allow to create gets AccessDenied and nothing is stored."""
        name = storage.fresh_name("create")
        policy = Policy.parse(POLICIES[policy_name](name))
        store = await storage.store("create", policy, name)
        for index, user in enumerate(STANDARD_USERS):
            identity = user.identity()
            row_id = f"new-{index}"
            resource = Resource(
                record_type(name), row_id, identity.principal, identity.attributes_as_lists(), identity.tenant_id or ""
            )
            allowed = policy.is_allowed("create", resource, identity)
            with acting_as(identity):
                try:
                    await store.create(row_id, {"slug": f"new-{index}", "rank": index})
                    outcome = "created"
                except AccessDenied:
                    outcome = "denied"
            with system_context("conformance check", tenant_id=identity.tenant_id):
                stored = await store.get(row_id)
            POLICY_DECIDES.require(
                outcome == ("created" if allowed else "denied") and (stored is not None) == allowed,
                f"policy {policy_name!r}: create by {describe_actor(identity)} -> {outcome} (row stored: "
                f"{stored is not None}); the policy {'allows' if allowed else 'denies'} create",
            )

    # -- core guarantee: no write without identity ----------------------------------------------

    @conformance_test("storage.no-actor-no-write", NO_ANONYMOUS_WRITE)
    async def test_no_actor_no_write(self, storage: StorageContext) -> None:
        """With no identity and no system context, every write is refused and reads see nothing."""
        seeded = await storage.seeded("anonymous")
        attempts = {
            "create": lambda s: s.create("anon-new", {"slug": "anon", "rank": 0}),
            "update": lambda s: s.update("r000", {"score": -1.0}),
            "update unowned": lambda s: s.update("g-unowned", {"score": -1.0}),
            "update_where": lambda s: s.update_where({}, {"score": -1.0}),
            "delete": lambda s: s.delete("r001"),
            "delete unowned": lambda s: s.delete("g-unowned"),
            "delete_where": lambda s: s.delete_where({}),
        }
        for label, attempt in attempts.items():
            result = await _run_without_actor(attempt(seeded.store))
            NO_ANONYMOUS_WRITE.require(
                isinstance(result, (AccessDenied, RowNotFound)) or result in (0, False),
                f"{label} with no actor returned {result!r} instead of being refused",
            )
        listing = await _run_without_actor(seeded.store.list(limit=100))
        NO_ANONYMOUS_WRITE.require(
            isinstance(listing, AccessDenied) or (isinstance(listing, Page) and not listing.data),
            f"list with no actor returned {listing!r}",
        )
        with system_context("conformance check"):
            rows = [r for p in await all_pages(seeded.store, limit=50, who="system") for r in p.data]
        NO_ANONYMOUS_WRITE.require(
            {key_of(r) for r in rows} == {s.key for s in seeded.seeds}
            and all(r.data.get("score") != -1.0 for r in rows),
            "writes with no actor changed the stored rows",
        )

    # -- stamping, system context -------------------------------------------------------------

    @conformance_test("storage.owner-stamped", OWNER_STAMPED)
    async def test_owner_stamped(self, storage: StorageContext) -> None:
        """A user's row carries their principal, attributes and tenant; reserved fields in the data
        are ignored; ``owner=`` is not honoured outside the system context; data round-trips."""
        store = await storage.store("stamp")
        data = {"slug": "s-1", "rank": 7, "score": 1.5, "flag": True, "meta": {"k": [1, "two", None], "n": {"x": 1}}}
        for index, user in enumerate((ALICE, BOB, FRANK)):
            identity = user.identity()
            with acting_as(identity):
                created = await store.create(f"s-{index}", {**data, "slug": f"s-{index}"})
                fetched = await store.get(f"s-{index}")
            for where, row in (("create", created), ("get", fetched)):
                OWNER_STAMPED.require(row is not None, f"{where} by {user.principal!r} returned nothing")
                OWNER_STAMPED.require(
                    row.owner_principal == identity.principal
                    and row.tenant_id == (identity.tenant_id or "")
                    and {c: list(v) for c, v in (row.access_attributes or {}).items()}
                    == identity.attributes_as_lists(),
                    f"{where} by {user.principal!r}: owner {row.owner_principal!r}, tenant {row.tenant_id!r}, "
                    f"attributes {row.access_attributes!r}",
                )
                OWNER_STAMPED.require(
                    dict(row.data) == {**data, "slug": f"s-{index}"},
                    f"{where} returned data {dict(row.data)!r}, stored {data!r}",
                )
        with acting_as(ALICE.identity()):
            for reserved in ("owner_principal", "tenant_id", "access_attributes", "revision", "id"):
                try:
                    forged = await store.create(f"bad-{reserved}", {"slug": f"bad-{reserved}", reserved: "mallory"})
                except Exception as e:
                    raise STORE_ERRORS.fail(f"reserved field {reserved!r} in data raised {type(e).__name__}") from e
                OWNER_STAMPED.require(
                    forged.id == f"bad-{reserved}"
                    and forged.owner_principal == "alice"
                    and forged.tenant_id == (ALICE.tenant_id or "")
                    and forged.revision == 1
                    and reserved not in forged.data,
                    f"create with {reserved!r} in its data stored owner {forged.owner_principal!r}, tenant "
                    f"{forged.tenant_id!r}, id {forged.id!r}, revision {forged.revision!r}: reserved names in data "
                    "must be ignored",
                )
            try:
                row = await store.create("forged-owner", {"slug": "forged"}, owner=Owner("mallory", {}, BOB.tenant_id))
            except (AccessDenied, ValueError):
                row = None
            OWNER_STAMPED.require(
                row is None or (row.owner_principal == "alice" and row.tenant_id == ALICE.tenant_id),
                f"outside the system context, owner=Owner('mallory') gave a row owned by {row.owner_principal!r} "
                f"in tenant {row.tenant_id!r}"
                if row
                else "",
            )

    @conformance_test("storage.system-context", POLICY_DECIDES)
    async def test_system_context(self, storage: StorageContext) -> None:
        """The system context may do everything: it sees every tenant's rows, its rows are unowned
        (or owned as given) and belong to the tenant it names."""
        seeded = await storage.seeded("system")
        with system_context("conformance check"):
            rows = [r for p in await all_pages(seeded.store, limit=5, who="system") for r in p.data]
            POLICY_DECIDES.require(
                {key_of(r) for r in rows} == {s.key for s in seeded.seeds}, "the system context does not see every row"
            )
            created = await seeded.store.create("sys-1", {"slug": "sys-1"})
        POLICY_DECIDES.require(
            not created.owner_principal and created.tenant_id == "",
            f"a system row got owner {created.owner_principal!r}, tenant {created.tenant_id!r}",
        )
        with system_context("conformance check", tenant_id=ALICE.tenant_id):
            scoped = await seeded.store.create("sys-2", {"slug": "sys-2"})
        POLICY_DECIDES.require(
            scoped.tenant_id == ALICE.tenant_id,
            f"system_context(tenant_id=tenant-alpha) created a row in {scoped.tenant_id!r}",
        )

    # -- pages ----------------------------------------------------------------------------------

    @conformance_test("storage.paging-complete", COMPLETE_PAGES)
    async def test_paging_complete(self, storage: StorageContext) -> None:
        """Pages concatenate to the full, correctly ordered listing (by id; by a field ascending and
        descending, ties broken by id; filtered) for every limit from 1 to 6."""
        seeded = await storage.seeded("pages")
        for actor_label, enter in (
            ("system", lambda: system_context("conformance check")),
            ("carol", lambda: acting_as(CAROL.identity())),
        ):
            with enter() as actor:
                visible = [seeded.seed(k) for k in seeded.allowed(actor, "read")]
                orders = {
                    "by id": ({}, sorted(visible, key=lambda s: (s.id, s.tenant))),
                    "rank asc": ({"order_by": "rank"}, sorted(visible, key=lambda s: (s.data.get("rank"), s.id))),
                    "rank desc": (
                        {"order_by": "rank", "descending": True},
                        sorted(visible, key=lambda s: (s.data.get("rank"), s.id), reverse=True),
                    ),
                    "flag": (
                        {"where": {"flag": True}},
                        sorted((s for s in visible if s.data.get("flag") is True), key=lambda s: (s.id, s.tenant)),
                    ),
                }
                for label, (kwargs, expected) in orders.items():
                    for limit in range(1, 7):
                        rows = [
                            r
                            for p in await all_pages(seeded.store, limit=limit, who=actor_label, **kwargs)
                            for r in p.data
                        ]
                        if isinstance(actor, Identity):
                            check_partition(rows, actor, f"{label}, limit={limit}")
                        got = [r.id for r in rows]
                        want = [s.id for s in expected]
                        same_id_ties = len(set(want)) != len(want)
                        COMPLETE_PAGES.require(
                            sorted(got) == sorted(want) if same_id_ties else got == want,
                            f"{label}, limit={limit}, as {actor_label}: got {got}, expected {want}",
                        )

    @conformance_test("storage.paging-under-writes", COMPLETE_PAGES)
    async def test_paging_under_writes(self, storage: StorageContext) -> None:
        """A cursor resumes after the last row returned although rows are inserted and deleted between
        pages: no row that stayed is skipped or repeated."""
        seeds = [
            Seed(f"w{i:03d}", ALICE.tenant_id or "", ALICE, {"slug": f"w-{i}", "rank": i}) for i in range(0, 40, 2)
        ]
        seeded = await storage.seeded("under-writes", "default", seeds)
        seen: list[str] = []
        deleted: set[str] = set()
        with acting_as(ALICE.identity()):
            page = await seeded.store.list(limit=3)
            seen += [r.id for r in page.data]
            step = 0
            while page.has_more:
                step += 1
                await seeded.store.create(f"w{step * 2 - 1:03d}x", {"slug": f"ins-{step}", "rank": -step})
                await seeded.store.create(f"w{39 - step:03d}y", {"slug": f"late-{step}", "rank": 100 + step})
                victim = f"w{min(38, len(seen) * 2 + 4):03d}"
                if await seeded.store.delete(victim):
                    deleted.add(victim)
                page = await seeded.store.list(limit=3, cursor=page.next_cursor)
                seen += [r.id for r in page.data]
        COMPLETE_PAGES.require(len(seen) == len(set(seen)), f"rows repeated across pages: {seen}")
        stayed = {s.id for s in seeds} - deleted
        COMPLETE_PAGES.require(stayed <= set(seen), f"rows skipped across pages: {sorted(stayed - set(seen))}")
        COMPLETE_PAGES.require(seen == sorted(seen), f"pages out of order: {seen}")

    # -- errors, filters, revisions -------------------------------------------------------------

    @conformance_test("storage.errors", STORE_ERRORS)
    async def test_errors(self, storage: StorageContext) -> None:
        """Conflicts, missing rows, stale revisions and bad data raise the contract's errors; an id or
        unique field may repeat across tenants but not within one."""
        store = await storage.store("errors")
        with acting_as(ALICE.identity()):
            first = await store.create("e-1", {"slug": "taken", "rank": 1})
            await _expect(RowConflict, store.create("e-1", {"slug": "other"}), "create of an id taken in the tenant")
            await _expect(RowConflict, store.create("e-2", {"slug": "taken"}), "create of a slug taken in the tenant")
            await _expect(RowNotFound, store.update("missing", {"rank": 2}), "update of a missing row")
            await _expect(
                RowConflict,
                store.update("e-1", {"rank": 2}, expected_revision=first.revision + 5),
                "update with a stale expected_revision",
            )
            await _expect(InvalidRowData, store.create("e-3", {"slug": "x", "nope": 1}), "create with an unknown field")
            await _expect(
                InvalidRowData,
                store.create("e-4", {"slug": "x", "rank": "not an int"}),
                "create with a str in an int field",
            )
            await _expect(InvalidRowData, store.update("e-1", {"rank": "nope"}), "update with a str in an int field")
            await _expect(InvalidRowData, store.list(where={"nope": 1}), "list filtered on an unknown field")
            await _expect((InvalidRowData, ValueError), store.list(limit=0), "list with limit=0")
            STORE_ERRORS.require(await store.delete("missing") is False, "delete of a missing row did not return False")
        with acting_as(BOB.identity()):
            other = await store.create("e-1", {"slug": "taken", "rank": 1})
            STORE_ERRORS.require(
                other.tenant_id == BOB.tenant_id, "the same id in another tenant was refused or misplaced"
            )

    @conformance_test("storage.filters-and-revisions", STORE_ERRORS)
    async def test_filters_and_revisions(self, storage: StorageContext) -> None:
        """Equality filters on each field type select the right rows; update bumps ``revision`` and
        honours a current ``expected_revision``; update_where/delete_where report their counts."""
        store = await storage.store("filters")
        with acting_as(ALICE.identity()):
            for i in range(6):
                await store.create(f"f-{i}", {"slug": f"f-{i}", "rank": i % 3, "flag": i % 2 == 0, "score": float(i)})
            for where, want in (
                ({"rank": 1}, {"f-1", "f-4"}),
                ({"flag": False}, {"f-1", "f-3", "f-5"}),
                ({"slug": "f-2"}, {"f-2"}),
                ({"rank": 2, "flag": True}, {"f-2"}),
            ):
                got = {r.id for r in (await store.list(where=where, limit=50)).data}
                STORE_ERRORS.require(
                    got == want, f"list(where={where}) returned {sorted(got)}, expected {sorted(want)}"
                )
            row = await store.get("f-0")
            updated = await store.update("f-0", {"score": 9.5}, expected_revision=row.revision)
            STORE_ERRORS.require(
                updated.revision > row.revision and updated.data["score"] == 9.5,
                f"update gave revision {updated.revision} (was {row.revision}), data {dict(updated.data)}",
            )
            count = await store.update_where({"rank": 0}, {"score": 1.25})
            STORE_ERRORS.require(count == 2, f"update_where matching 2 rows returned {count}")
            count = await store.delete_where({"flag": False})
            STORE_ERRORS.require(count == 3, f"delete_where matching 3 rows returned {count}")
            remaining = {r.id for r in (await store.list(limit=50)).data}
            STORE_ERRORS.require(remaining == {"f-0", "f-2", "f-4"}, f"after delete_where: {sorted(remaining)}")

    # -- capabilities ---------------------------------------------------------------------------

    @conformance_test("storage.transactions", ATOMIC, requires="transactions")
    async def test_transactions(self, storage: StorageContext) -> None:
        """A transaction that raises leaves no trace; one that completes keeps all its changes."""
        store = await storage.store("tx")
        if not store.capabilities.transactions:
            pytest.skip(capability("transactions").skip_reason())
        with acting_as(ALICE.identity()):
            await store.create("t-0", {"slug": "t-0", "rank": 0})
            with contextlib.suppress(_Abort):
                async with store.transaction():
                    await store.create("t-1", {"slug": "t-1"})
                    await store.update("t-0", {"rank": 5})
                    raise _Abort
            ATOMIC.require(await store.get("t-1") is None, "a row created in a failed transaction remains")
            ATOMIC.require((await store.get("t-0")).data["rank"] == 0, "an update in a failed transaction remains")
            async with store.transaction():
                await store.create("t-2", {"slug": "t-2"})
                await store.update("t-0", {"rank": 6})
            ATOMIC.require(
                await store.get("t-2") is not None and (await store.get("t-0")).data["rank"] == 6,
                "a completed transaction lost a change",
            )

    @conformance_test("storage.persistence", DURABLE, requires="persistent")
    async def test_persistence(self, storage: StorageContext) -> None:
        """Rows, owners and revisions survive closing and reopening the backend."""
        name = storage.fresh_name("persist")
        store = await storage.store("persist", name=name)
        if not store.capabilities.persistent:
            pytest.skip(capability("persistent").skip_reason())
        with acting_as(ALICE.identity()):
            await store.create("p-1", {"slug": "p-1", "rank": 1})
            before = await store.update("p-1", {"rank": 2})
        await storage.reopen()
        store = await storage.store("persist", name=name)
        with acting_as(ALICE.identity()):
            after = await store.get("p-1")
        DURABLE.require(after == before, f"after reopening: {after!r}, before: {before!r}")

    @conformance_test("storage.backdoor-stamping", OWNER_STAMPED, requires="backdoor")
    async def test_backdoor_stamping(self, storage: StorageContext) -> None:
        """Read without the store API (the harness's backdoor), the persisted rows carry the owner and
        tenant the store reported, whatever the client data said."""
        name = storage.fresh_name("backdoor")
        store = await storage.store("backdoor", name=name)
        with acting_as(ALICE.identity()):
            await store.create(
                "b-1", {"slug": "b-1", "meta": {"owner_principal": "mallory", "tenant_id": "tenant-beta"}}
            )
        with acting_as(BOB.identity()):
            await store.create("b-1", {"slug": "b-1"})
        raw = await storage.harness.raw_rows(storage.backend_name, storage.backend, name)
        if raw is None:
            pytest.skip(capability("backdoor").skip_reason())
        got = sorted((r["tenant_id"], r["id"], r["owner_principal"]) for r in raw)
        want = sorted([(ALICE.tenant_id, "b-1", "alice"), (BOB.tenant_id, "b-1", "bob")])
        OWNER_STAMPED.require(got == want, f"persisted rows {got}, expected {want}")

    # -- core guarantee: concurrency ------------------------------------------------------------

    @conformance_test("storage.concurrent-actors-isolated", NO_CONCURRENT_LEAK)
    async def test_concurrent_actors_isolated(self, storage: StorageContext) -> None:
        """Many concurrent tasks, each acting as a different user, create and list rows: every row is
        owned by the task that created it and no task sees another tenant's rows."""
        store = await storage.store("concurrent", Policy.parse(POLICIES["owner-only"]("unused")))
        identities = users()

        async def worker(index: int) -> list[str]:
            identity = identities[index % len(identities)]
            problems = []
            with acting_as(identity):
                for n in range(3):
                    await asyncio.sleep(0)
                    row = await store.create(f"c-{index}-{n}", {"slug": f"c-{index}-{n}", "rank": index})
                    if row.owner_principal != identity.principal or row.tenant_id != (identity.tenant_id or ""):
                        problems.append(
                            f"task of {identity.principal!r} created a row owned by "
                            f"{row.owner_principal!r} in {row.tenant_id!r}"
                        )
                    await asyncio.sleep(0)
                listing = await store.list(limit=1000)
                foreign = [r.id for r in listing.data if r.owner_principal != identity.principal]
                if foreign:
                    problems.append(f"task of {identity.principal!r} listed rows of others: {foreign[:5]}")
            return problems

        results = await asyncio.gather(*(worker(i) for i in range(48)))
        found = [p for r in results for p in r]
        NO_CONCURRENT_LEAK.require(not found, "\n".join(found[:10]))

    # -- the core's resource services on this backend -------------------------------------------

    @conformance_test("storage.service-prompts", TENANT_ISOLATION)
    async def test_service_prompts(self, storage: StorageContext) -> None:
        """The prompts service on this backend: versions and exactly one default per prompt; another
        tenant's user with the same team name neither lists, reads nor changes it; a teammate reads it."""
        services = _services()
        prompts = await services.prompts.PromptService.open(lambda c: storage.backend.open_store(c, Policy.default()))
        with acting_as(ALICE.identity()):
            created = await prompts.create("hello {{ name }}", ["name"])
            await prompts.update(created.prompt_id, "hi {{ name }}", 1, ["name"], set_as_default=False)
            versions = await prompts.list_versions(created.prompt_id)
        SERVICES_ON_STORE.require(
            [v.version for v in versions] == [1, 2] and [v.is_default for v in versions] == [True, False],
            f"versions after one update (not default): {versions}",
        )
        with acting_as(BOB.identity()):
            listed = [p.prompt_id for p in await prompts.list()]
            TENANT_ISOLATION.require(created.prompt_id not in listed, "bob (tenant-beta) lists alice's prompt")
            for attempt in (
                prompts.get(created.prompt_id),
                prompts.set_default(created.prompt_id, 2),
                prompts.update(created.prompt_id, "stolen", 2),
                prompts.delete(created.prompt_id),
            ):
                outcome = await _service_outcome(attempt)
                TENANT_ISOLATION.require(outcome in (403, 404), f"bob acting on alice's prompt got {outcome}")
        with acting_as(CAROL.identity()):
            seen = await prompts.get(created.prompt_id)
            SERVICES_ON_STORE.require(seen.version == 1, f"carol (alice's teammate) reads {seen}")
        with acting_as(ALICE.identity()):
            await prompts.set_default(created.prompt_id, 2)
            defaults = [v.version for v in await prompts.list_versions(created.prompt_id) if v.is_default]
            SERVICES_ON_STORE.require(defaults == [2], f"defaults after set_default(2): {defaults}")

    @conformance_test("storage.service-batches", SERVICES_ON_STORE)
    async def test_service_batches(self, storage: StorageContext) -> None:
        """The batches service on this backend: idempotency keys are per caller (two tenants reusing a
        key get their own batches, no error), a retry returns the same batch, others cannot read it."""
        services = _services()
        batches = await services.batches.BatchService.open(lambda c: storage.backend.open_store(c, Policy.default()))
        request = {"input_file_id": "file-1", "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        made = {}
        for user in (ALICE, BOB):
            with acting_as(user.identity()):
                record, created = await batches.create(**request, idempotency_key="same-key")
                SERVICES_ON_STORE.require(created, f"{user.principal}'s first use of the key did not create a batch")
                made[user.principal] = record.id
        SERVICES_ON_STORE.require(made["alice"] != made["bob"], f"two callers got one batch for one key: {made}")
        with acting_as(ALICE.identity()):
            again, created = await batches.create(**request, idempotency_key="same-key")
            SERVICES_ON_STORE.require(not created and again.id == made["alice"], "a retry did not return the batch")
        with acting_as(BOB.identity()):
            outcome = await _service_outcome(batches.get(made["alice"]))
            TENANT_ISOLATION.require(outcome == 404, f"bob reading alice's batch got {outcome}")

    @conformance_test("storage.service-connectors", TENANT_ISOLATION)
    async def test_service_connectors(self, storage: StorageContext) -> None:
        """The connectors service on this backend: global connectors for all, a tenant's only for it."""
        services = _services()
        record = services.connectors.ConnectorRecord
        connectors = await services.connectors.ConnectorService.open(
            lambda c: storage.backend.open_store(c, Policy.default())
        )
        await connectors.sync(
            [record("everyone", "http://global/mcp")], {ALICE.tenant_id: [record("alpha-only", "http://alpha/mcp")]}
        )
        for user, expected in ((ALICE, {"everyone", "alpha-only"}), (BOB, {"everyone"})):
            with acting_as(user.identity()):
                got = {c.connector_id for c in await connectors.list()}
                TENANT_ISOLATION.require(got == expected, f"{user.principal} sees connectors {sorted(got)}")
        with acting_as(BOB.identity()):
            outcome = await _service_outcome(connectors.get("alpha-only"))
            TENANT_ISOLATION.require(outcome == 404, f"bob reading tenant-alpha's connector got {outcome}")


def _services() -> Any:
    try:
        from ogx_tenancy import services
        from ogx_tenancy.services import batches, connectors, prompts  # noqa: F401
    except ImportError:
        pytest.skip("this version of the core (ogx-tenancy) has no resource services")
    return services


async def _service_outcome(awaitable: Any) -> int:
    """The HTTP status a service call ends with (200 when it succeeds)."""
    try:
        await awaitable
    except (AccessDenied, RowNotFound, RowConflict, InvalidRowData) as e:
        return e.status
    except Exception as e:
        status = getattr(e, "status", None)
        if isinstance(status, int):
            return status
        raise STORE_ERRORS.fail(f"a service call raised {type(e).__name__}: {e}") from e
    return 200


class _Abort(Exception):
    pass


def _own_tenant_first(seeded: Seeded, identity: Identity, row_id: str) -> Seed | None:
    for tenant in (identity.tenant_id or "", ""):
        for s in seeded.seeds:
            if s.id == row_id and s.tenant == tenant:
                return s
    return None


async def _attempt(store: AccessControlledStore, action: str, row_id: str) -> str:
    try:
        if action == "update":
            await store.update(row_id, {"score": 99.0})
            return "ok"
        return "ok" if await store.delete(row_id) else "missing"
    except AccessDenied:
        return "denied"
    except RowNotFound:
        return "missing"
    except Exception as e:
        raise STORE_ERRORS.fail(f"{action} of {row_id!r} raised {type(e).__name__}: {e}") from e


async def _safe_delete(store: AccessControlledStore, row_id: str) -> bool:
    try:
        return bool(await store.delete(row_id))
    except (AccessDenied, RowNotFound):
        return False


async def _run_without_actor(awaitable: Any) -> Any:
    """Await in a fresh context with no actor (a task started outside any request)."""

    async def bare() -> Any:
        try:
            return await awaitable
        except Exception as e:  # noqa: BLE001 - the caller inspects it
            return e

    return await asyncio.get_running_loop().create_task(bare(), context=contextvars.Context())


async def _expect(errors: type[Exception] | tuple[type[Exception], ...], awaitable: Any, what: str) -> None:
    try:
        await awaitable
    except errors:
        return
    except Exception as e:
        raise STORE_ERRORS.fail(f"{what} raised {type(e).__name__}: {e}; expected {errors}") from e
    raise STORE_ERRORS.fail(f"{what} succeeded; expected {errors}")
