"""The identity family: ``ogx_tenancy_identity`` plugins.

Subclass ``IdentitySuite``, set ``plugin_name`` (or override ``conformance_plugin``) and ``harness``
(or override the ``identity_harness`` fixture)::

    class TestMyGatewayIdentity(IdentitySuite):
        plugin_name = "my_gateway"
        harness = MyGatewayHarness
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from ogx_tenancy import Identity, IdentityRejected, IncomingRequest, RequestHeaders, acting_as
from ogx_tenancy.manager import PluginManager

from .. import companions
from ..capabilities import capability
from ..discovery import DiscoveryError, call_hook, register, validated_settings
from ..guarantees import (
    BAD_INPUT_REFUSED,
    IDENTITY_FROM_GATEWAY,
    NO_CONCURRENT_LEAK,
    NO_ECHO,
    NO_UNTRUSTED_IDENTITY,
    ORDER_INDEPENDENCE,
    PLUGIN_LOADS,
    PSEUDO_GROUPS,
)
from ..harness import ALICE, BOB, IdentityHarness, TestUser
from ..marks import conformance_test
from ..runner import loop_runner
from ._base import PluginSuite, PluginUnderTest

HOOK = "ogx_tenancy_identity"

# Headers a client may add to look like it comes from the gateway's address.
SPOOFED_ORIGIN_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded", "x-forwarded-host", "x-original-forwarded-for")


@dataclass
class Outcome:
    """What one call of the plugin's identity hook did."""

    identity: Identity | None = None
    rejected: IdentityRejected | None = None
    crashed: BaseException | None = None

    @property
    def believed(self) -> bool:
        """The plugin established a user (a principal) from the request."""
        return self.identity is not None and self.identity.principal is not None

    def describe(self) -> str:
        if self.crashed is not None:
            return f"raised {type(self.crashed).__name__}: {self.crashed}"
        if self.rejected is not None:
            return f"refused it with {self.rejected.status} ({self.rejected.reason!r}, header={self.rejected.header!r})"
        if self.identity is None:
            return "returned None"
        return f"returned an identity with principal {self.identity.principal!r}"


class IdentityContext:
    """The plugin registered with the core plugin manager, with its validated settings."""

    def __init__(self, target: PluginUnderTest, harness: IdentityHarness):
        self.target = target
        self.harness = harness
        try:
            self.manager = register(target.plugin, target.name)
            self.settings = validated_settings(self.manager, target.name, harness.settings)
        except DiscoveryError as e:
            raise PLUGIN_LOADS.fail(str(e)) from None

    def attempt(self, request: IncomingRequest) -> Outcome:
        """Call the plugin's own hook (not the merged host) and record what it did."""
        try:
            result = call_hook(self.target.plugin, HOOK, request=request, settings=self.settings)
        except IdentityRejected as e:
            return Outcome(rejected=e)
        except Exception as e:  # noqa: BLE001 - recording a crash is the point
            return Outcome(crashed=e)
        if result is not None and not isinstance(result, Identity):
            return Outcome(crashed=TypeError(f"hook returned {type(result).__name__}, not Identity or None"))
        return Outcome(identity=result)

    def manager_with(self, order: Iterable[tuple[str, object]]) -> PluginManager:
        manager = PluginManager()
        for name, plugin in order:
            manager.register(plugin, name)
        return manager

    def settings_map(self) -> dict[str, object]:
        return {self.target.name: self.settings}


def with_headers(request: IncomingRequest, pairs: Iterable[tuple[bytes, bytes]]) -> IncomingRequest:
    return IncomingRequest(request.method, request.path, request.client, RequestHeaders(tuple(pairs)))


def identity_header_pairs(request: IncomingRequest, header: str) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in request.headers.raw() if n.decode("latin-1").lower() == header.lower()]


def replace_header(request: IncomingRequest, header: str, value: bytes) -> IncomingRequest:
    pairs = [(n, v) for n, v in request.headers.raw() if n.decode("latin-1").lower() != header.lower()]
    return with_headers(request, [*pairs, (header.lower().encode("latin-1"), value)])


def without_headers(request: IncomingRequest, headers: Iterable[str]) -> IncomingRequest:
    drop = {h.lower() for h in headers}
    return with_headers(request, [(n, v) for n, v in request.headers.raw() if n.decode("latin-1").lower() not in drop])


def attribute_values(users: Iterable[TestUser]) -> set[str]:
    return {value for user in users for values in user.attributes.values() for value in values} | {
        user.tenant_id for user in users if user.tenant_id
    }


class IdentitySuite(PluginSuite):
    """Conformance tests for one identity plugin. Provide the ``identity_harness`` fixture."""

    @pytest.fixture
    def identity_harness(self, request: pytest.FixtureRequest) -> IdentityHarness:
        harness = self.harness_instance(request.config)
        if not isinstance(harness, IdentityHarness):
            pytest.fail(
                f"{type(self).__name__}: set harness = <your IdentityHarness subclass> or override the "
                "identity_harness fixture",
                pytrace=False,
            )
        return harness

    @pytest.fixture
    def identity(self, conformance_plugin: PluginUnderTest, identity_harness: IdentityHarness) -> IdentityContext:
        return IdentityContext(conformance_plugin, identity_harness)

    # -- loading and the happy path -------------------------------------------------------------

    @conformance_test("identity.plugin-loads", PLUGIN_LOADS)
    def test_plugin_loads(self, identity: IdentityContext) -> None:
        """The plugin registers with the core plugin manager, implements the identity hook and its
        harness's settings validate; the harness names the identity headers."""
        hooks = {i.name: i.hooks for i in identity.manager.plugins()}[identity.target.name]
        PLUGIN_LOADS.require(
            HOOK in hooks, f"plugin {identity.target.name!r} does not implement {HOOK} (hooks: {hooks})"
        )
        PLUGIN_LOADS.require(
            identity.harness.identity_headers,
            f"{type(identity.harness).__name__}.identity_headers is empty: name the headers that carry identity",
        )

    @conformance_test("identity.gateway-request-accepted", IDENTITY_FROM_GATEWAY)
    def test_gateway_request_accepted(self, identity: IdentityContext) -> None:
        """A request from the trusted gateway yields its user's principal."""
        for user in identity.harness.users():
            outcome = identity.attempt(identity.harness.request_for(user))
            expected = identity.harness.expected_identity(user)
            IDENTITY_FROM_GATEWAY.require(
                outcome.believed and outcome.identity.principal == expected.principal,
                f"for {user.principal!r} the plugin {outcome.describe()}, expected principal {expected.principal!r}",
            )

    @conformance_test("identity.attributes", IDENTITY_FROM_GATEWAY, requires="attributes")
    def test_attributes(self, identity: IdentityContext) -> None:
        """The attribute categories the harness declares reach the Identity, values in order."""
        if not identity.harness.attribute_categories:
            pytest.skip(capability("attributes").skip_reason())
        for user in identity.harness.users():
            outcome = identity.attempt(identity.harness.request_for(user))
            expected = identity.harness.expected_identity(user)
            IDENTITY_FROM_GATEWAY.require(outcome.believed, f"for {user.principal!r} the plugin {outcome.describe()}")
            got = {c: tuple(outcome.identity.attributes.get(c, ())) for c in identity.harness.attribute_categories}
            want = {c: tuple(expected.attributes.get(c, ())) for c in identity.harness.attribute_categories}
            IDENTITY_FROM_GATEWAY.require(got == want, f"attributes of {user.principal!r}: got {got}, expected {want}")

    @conformance_test("identity.tenant", IDENTITY_FROM_GATEWAY, requires="tenants")
    def test_tenant(self, identity: IdentityContext) -> None:
        """The gateway's tenant id reaches the Identity (and no tenant stays no tenant)."""
        if not identity.harness.tenants:
            pytest.skip(capability("tenants").skip_reason())
        for user in identity.harness.users():
            outcome = identity.attempt(identity.harness.request_for(user))
            expected = identity.harness.expected_identity(user)
            IDENTITY_FROM_GATEWAY.require(outcome.believed, f"for {user.principal!r} the plugin {outcome.describe()}")
            IDENTITY_FROM_GATEWAY.require(
                outcome.identity.tenant_id == expected.tenant_id,
                f"tenant of {user.principal!r}: got {outcome.identity.tenant_id!r}, expected {expected.tenant_id!r}",
            )

    @conformance_test("identity.no-headers-no-user", IDENTITY_FROM_GATEWAY)
    def test_no_headers_no_user(self, identity: IdentityContext) -> None:
        """A request without the identity headers establishes no user."""
        request = without_headers(identity.harness.request_for(ALICE), identity.harness.identity_headers)
        outcome = identity.attempt(request)
        IDENTITY_FROM_GATEWAY.require(
            not outcome.believed and outcome.crashed is None,
            f"a request without any of {identity.harness.identity_headers}: the plugin {outcome.describe()}",
        )

    # -- core guarantee: no identity from client-controlled or duplicated headers --------------

    @conformance_test("identity.forged-request-refused", NO_UNTRUSTED_IDENTITY)
    def test_forged_request_refused(self, identity: IdentityContext) -> None:
        """The same claim sent by a client that is not the gateway is not believed, even when the
        client adds X-Forwarded-For / Forwarded / X-Real-IP naming the gateway's address."""
        for user in identity.harness.users():
            genuine = identity.harness.request_for(user)
            forged = identity.harness.forged_request(user)
            gateway_host = genuine.client[0] if genuine.client else "127.0.0.1"
            spoof = [
                (name.encode(), (f"for={gateway_host}" if name == "forwarded" else gateway_host).encode())
                for name in SPOOFED_ORIGIN_HEADERS
            ]
            for label, request in (
                ("as is", forged),
                ("with spoofed origin headers", with_headers(forged, [*forged.headers.raw(), *spoof])),
            ):
                outcome = identity.attempt(request)
                NO_UNTRUSTED_IDENTITY.require(
                    not outcome.believed,
                    f"a forged request for {user.principal!r} ({label}) was believed: the plugin {outcome.describe()}",
                )

    @conformance_test("identity.duplicated-header-refused", NO_UNTRUSTED_IDENTITY)
    def test_duplicated_header_refused(self, identity: IdentityContext) -> None:
        """A request carrying an identity header twice (same value, another user's value before or
        after, another letter case) establishes no user."""
        for header, variant, request in self._duplicates(identity):
            outcome = identity.attempt(request)
            NO_UNTRUSTED_IDENTITY.require(
                not outcome.believed,
                f"identity header {header!r} sent twice ({variant}) was believed: the plugin {outcome.describe()}",
            )

    @conformance_test("identity.duplicated-header-named", BAD_INPUT_REFUSED)
    def test_duplicated_header_named(self, identity: IdentityContext) -> None:
        """A duplicated identity header is refused with ``IdentityRejected`` naming that header."""
        for header, variant, request in self._duplicates(identity):
            outcome = identity.attempt(request)
            BAD_INPUT_REFUSED.require(
                outcome.rejected is not None and (outcome.rejected.header or "").lower() == header.lower(),
                f"identity header {header!r} sent twice ({variant}): the plugin {outcome.describe()}; expected "
                f"IdentityRejected(..., header={header!r})",
            )

    def _duplicates(self, identity: IdentityContext) -> list[tuple[str, str, IncomingRequest]]:
        genuine = identity.harness.request_for(ALICE)
        other = identity.harness.request_for(BOB)
        cases = []
        for header in identity.harness.identity_headers:
            own = identity_header_pairs(genuine, header)
            if not own:
                continue
            raw = list(genuine.headers.raw())
            foreign = identity_header_pairs(other, header) or [(own[0][0], b"mallory")]
            cases.append((header, "same value twice", with_headers(genuine, [*raw, own[0]])))
            cases.append((header, "another user's value after", with_headers(genuine, [*raw, foreign[0]])))
            cases.append((header, "another user's value before", with_headers(genuine, [foreign[0], *raw])))
            cases.append(
                (
                    header,
                    "upper-case copy",
                    with_headers(genuine, [*raw, (header.upper().encode("latin-1"), foreign[0][1])]),
                )
            )
        if not cases:
            pytest.fail(
                f"request_for({ALICE.principal!r}) carries none of the identity headers "
                f"{identity.harness.identity_headers}",
                pytrace=False,
            )
        return cases

    # -- bad input ------------------------------------------------------------------------------

    @conformance_test("identity.bad-values-refused", BAD_INPUT_REFUSED)
    def test_bad_values_refused(self, identity: IdentityContext) -> None:
        """Invalid UTF-8, control characters and over-long values in an identity header are refused
        (``IdentityRejected``, or no identity) — never a crash, never a partial identity."""
        genuine = identity.harness.request_for(ALICE)
        bad_values = {
            "invalid UTF-8": b"\xff\xfe\xfa",
            "NUL byte": b"ali\x00ce",
            "escape character": b"ali\x1b[31mce",
            "64 KiB value": b"a" * 65536,
        }
        for header in identity.harness.identity_headers:
            if not identity_header_pairs(genuine, header):
                continue
            for label, value in bad_values.items():
                outcome = identity.attempt(replace_header(genuine, header, value))
                BAD_INPUT_REFUSED.require(
                    outcome.crashed is None and not outcome.believed,
                    f"identity header {header!r} with {label}: the plugin {outcome.describe()}",
                )

    @conformance_test("identity.rejections-do-not-echo", NO_ECHO)
    def test_rejections_do_not_echo(self, identity: IdentityContext) -> None:
        """Rejection reasons shown to clients never contain attribute values or tenant ids."""
        private = attribute_values([ALICE, BOB])
        requests = [identity.harness.forged_request(ALICE)] + [r for _, _, r in self._duplicates(identity)]
        checked = 0
        for request in requests:
            outcome = identity.attempt(request)
            if outcome.rejected is None:
                continue
            checked += 1
            echoed = sorted(v for v in private if v in outcome.rejected.reason)
            NO_ECHO.require(not echoed, f"rejection reason {outcome.rejected.reason!r} echoes {echoed}")
        if not checked:
            pytest.skip("the plugin refused none of the requests by raising IdentityRejected (it returned None)")

    @conformance_test("identity.pseudo-groups-dropped", PSEUDO_GROUPS, requires="pseudo_groups")
    def test_pseudo_groups_dropped(self, identity: IdentityContext) -> None:
        """Groups every user has (declared by the harness) do not reach the Identity; the others do."""
        if not identity.harness.pseudo_groups:
            pytest.skip(capability("pseudo_groups").skip_reason())
        attributes = {c: tuple(v) for c, v in ALICE.attributes.items()}
        for category, value in identity.harness.pseudo_groups:
            attributes[category] = (*attributes.get(category, ()), value)
        user = TestUser(ALICE.principal, attributes, ALICE.tenant_id)
        outcome = identity.attempt(identity.harness.request_for(user))
        IDENTITY_FROM_GATEWAY.require(outcome.believed, f"the plugin {outcome.describe()}")
        for category, value in identity.harness.pseudo_groups:
            PSEUDO_GROUPS.require(
                value not in outcome.identity.attributes.get(category, ()),
                f"pseudo-group {value!r} reached the identity's {category!r}",
            )
        expected = identity.harness.expected_identity(ALICE)
        for category in identity.harness.attribute_categories:
            PSEUDO_GROUPS.require(
                tuple(outcome.identity.attributes.get(category, ())) == tuple(expected.attributes.get(category, ())),
                f"dropping pseudo-groups also changed the real values of {category!r}",
            )

    @conformance_test("identity.pure", IDENTITY_FROM_GATEWAY)
    def test_pure(self, identity: IdentityContext) -> None:
        """Calling the hook twice with one request gives the same answer and leaves the request unchanged."""
        for user in identity.harness.users():
            request = identity.harness.request_for(user)
            before = request.headers.raw()
            first, second = identity.attempt(request), identity.attempt(request)
            IDENTITY_FROM_GATEWAY.require(
                first.identity == second.identity and first.describe() == second.describe(),
                f"two calls for {user.principal!r}: {first.describe()} then {second.describe()}",
            )
            IDENTITY_FROM_GATEWAY.require(request.headers.raw() == before, "the hook changed the request's headers")

    # -- core guarantee: no leak between concurrent requests -----------------------------------

    @conformance_test("identity.concurrent-requests-isolated", NO_CONCURRENT_LEAK)
    def test_concurrent_requests_isolated(self, identity: IdentityContext) -> None:
        """Hundreds of interleaved calls from threads, and from asyncio tasks each acting as another
        user, each get exactly their own request's identity."""
        users = list(identity.harness.users())
        requests = {u.principal: identity.harness.request_for(u) for u in users}
        expected = {p: identity.attempt(r).identity for p, r in requests.items()}
        plan = [users[i % len(users)] for i in range(600)]

        def one(user: TestUser) -> tuple[str, Identity | None]:
            return user.principal, identity.attempt(requests[user.principal]).identity

        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible to expose shared state
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(one, plan))
        finally:
            sys.setswitchinterval(previous)
        for principal, got in results:
            NO_CONCURRENT_LEAK.require(
                got == expected[principal],
                f"a concurrent call for {principal!r} returned {got!r}, alone it returns {expected[principal]!r}",
            )

        async def as_someone_else(index: int, user: TestUser) -> tuple[str, Identity | None]:
            bystander = users[(index + 1) % len(users)]
            with acting_as(bystander.identity()):
                await asyncio.sleep(0)
                got = identity.manager.identify(requests[user.principal], identity.settings_map())
                await asyncio.sleep(0)
                return user.principal, got

        async def all_tasks() -> list[tuple[str, Identity | None]]:
            return await asyncio.gather(*(as_someone_else(i, u) for i, u in enumerate(plan[:120])))

        for principal, got in loop_runner().run(all_tasks()):
            want = expected[principal]
            NO_CONCURRENT_LEAK.require(
                got is not None
                and want is not None
                and got.principal == want.principal
                and dict(got.attributes) == dict(want.attributes)
                and got.tenant_id == want.tenant_id,
                f"inside a task acting as another user, the request of {principal!r} gave {got!r}, expected {want!r}",
            )

    # -- core guarantee: order independence ------------------------------------------------------

    @conformance_test("identity.merge-order-independent", ORDER_INDEPENDENCE)
    def test_merge_order_independent(self, identity: IdentityContext) -> None:
        """Registered beside other identity plugins in every order, the merged identity is the same;
        with a second principal claimant, every order refuses the request."""
        name = identity.target.name
        others = [
            ("aaa-conformance-partial", companions.PartialIdentityCompanion()),
            ("zzz-conformance-silent", companions.SilentCompanion()),
        ]
        settings = identity.settings_map()
        for user in identity.harness.users():
            request = identity.harness.request_for(user)
            results = set()
            for order in itertools.permutations([(name, identity.target.plugin), *others]):
                merged = identity.manager_with(order).identify(request, settings)
                results.add(merged)
            ORDER_INDEPENDENCE.require(
                len(results) == 1, f"for {user.principal!r} the merged identity depends on order: {results}"
            )
            merged = results.pop()
            ORDER_INDEPENDENCE.require(
                merged is not None and companions.COMPANION_ROLE in merged.attributes.get("roles", ()),
                f"the merged identity for {user.principal!r} lost the companion's role: {merged!r}",
            )
            claimant = ("mmm-conformance-claimant", companions.ClaimingCompanion())
            for order in itertools.permutations([(name, identity.target.plugin), claimant]):
                try:
                    merged = identity.manager_with(order).identify(request, settings)
                except IdentityRejected:
                    continue
                raise ORDER_INDEPENDENCE.fail(
                    f"with a second plugin claiming the principal, order {[n for n, _ in order]} accepted "
                    f"{merged!r} instead of refusing"
                )
