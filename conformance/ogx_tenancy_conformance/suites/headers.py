"""The outgoing-headers family: ``ogx_tenancy_extra_request_headers`` plugins.

Subclass ``HeaderSuite``, set ``plugin_name`` (or override ``conformance_plugin``) and, to declare
capabilities, return your ``HeaderHarness`` from the ``header_harness`` fixture::

    class TestMyHeaders(HeaderSuite):
        plugin_name = "my_headers"

        harness = MyHeaderHarness

If your plugin also identifies users, set ``identifying_harness`` to its ``IdentityHarness``: the
leak tests then run the identity hook between header calls, as a real request does.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from ogx_tenancy import EndpointKind, HeaderConflict, Identity, OutgoingRequest, acting_as
from ogx_tenancy.manager import PluginManager

from .. import companions
from ..capabilities import capability
from ..discovery import DiscoveryError, call_hook, register, validated_settings
from ..guarantees import (
    HEADERS_FOR_USER,
    HEADERS_PURE,
    HEADERS_WELL_FORMED,
    NO_CONCURRENT_LEAK,
    ORDER_INDEPENDENCE,
    PLUGIN_LOADS,
)
from ..harness import HeaderHarness, IdentityHarness, TestUser
from ..marks import conformance_test
from ..runner import loop_runner
from ._base import PluginSuite, PluginUnderTest
from .identity import IdentityContext

HOOK = "ogx_tenancy_extra_request_headers"
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name
BAD_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls other than horizontal tab

HOSTILE_IDENTITIES = (
    Identity("eve\r\nx-injected: 1", {"teams": ("team\r\nx-injected: 2",)}, "tenant-gamma"),
    Identity("zoë ünïcødé ✓", {"teams": ("équipe",), "roles": ("rôle",)}, "tenant-gamma"),
    Identity("m" * 4096, {"teams": tuple(f"team-{i}" for i in range(200))}, "t" * 200),
    Identity("nul\x00byte", {}, None),
)


@dataclass
class HeaderCall:
    headers: dict[str, str] | None = None
    crashed: BaseException | None = None

    def describe(self) -> str:
        if self.crashed is not None:
            return f"raised {type(self.crashed).__name__}: {self.crashed}"
        return f"returned {self.headers!r}"


class HeaderContext:
    """The plugin registered with the core plugin manager, with its validated settings."""

    def __init__(self, target: PluginUnderTest, harness: HeaderHarness, identity_harness: IdentityHarness | None):
        self.target = target
        self.harness = harness
        self.identity = IdentityContext(target, identity_harness) if identity_harness is not None else None
        try:
            self.manager = register(target.plugin, target.name)
            self.settings = validated_settings(self.manager, target.name, harness.settings)
        except DiscoveryError as e:
            raise PLUGIN_LOADS.fail(str(e)) from None

    def request(self, endpoint: EndpointKind = EndpointKind.CHAT, *, stream: bool = False) -> OutgoingRequest:
        model = None if endpoint in (EndpointKind.MODELS, EndpointKind.HEALTH) else self.harness.model
        return OutgoingRequest(self.harness.provider_type, self.harness.provider_id, endpoint, model, stream)

    def call(self, request: OutgoingRequest, identity: Identity | None) -> HeaderCall:
        """The plugin's own hook, called directly."""
        try:
            result = call_hook(self.target.plugin, HOOK, request=request, identity=identity, settings=self.settings)
        except Exception as e:  # noqa: BLE001 - recording a crash is the point
            return HeaderCall(crashed=e)
        if result is not None and not isinstance(result, dict):
            return HeaderCall(crashed=TypeError(f"hook returned {type(result).__name__}, not dict or None"))
        return HeaderCall(headers=result)

    def clean(self, request: OutgoingRequest, identity: Identity | None) -> HeaderCall:
        """The hook's answer in a fresh context: no actor, nothing identified before."""

        async def fresh() -> HeaderCall:
            return self.call(request, identity)

        return loop_runner().run(fresh())

    def user_identities(self) -> list[Identity]:
        return list(self.harness.identities())


def problems(result: HeaderCall) -> list[str]:
    if result.crashed is not None:
        return [result.describe()]
    found = []
    for name, value in (result.headers or {}).items():
        if not isinstance(name, str) or not TOKEN.match(name):
            found.append(f"invalid header name {name!r}")
        if not isinstance(value, str):
            found.append(f"header {name!r} has a non-string value of type {type(value).__name__}")
        elif BAD_VALUE_CHARS.search(value):
            found.append(f"header {name!r} has control characters in its value {value!r}")
    return found


def lower(headers: dict[str, str] | None) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}


class HeaderSuite(PluginSuite):
    """Conformance tests for one outgoing-header plugin."""

    #: optional: the plugin's IdentityHarness when it identifies users too
    identifying_harness: ClassVar[Any] = None

    @pytest.fixture
    def header_harness(self, request: pytest.FixtureRequest) -> HeaderHarness:
        harness = self.harness_instance(request.config)
        return harness if isinstance(harness, HeaderHarness) else HeaderHarness()

    @pytest.fixture
    def header_identity_harness(self, request: pytest.FixtureRequest) -> IdentityHarness | None:
        harness = self.identifying_harness
        return harness() if isinstance(harness, type) else harness

    @pytest.fixture
    def headers(
        self,
        conformance_plugin: PluginUnderTest,
        header_harness: HeaderHarness,
        header_identity_harness: IdentityHarness | None,
    ) -> HeaderContext:
        return HeaderContext(conformance_plugin, header_harness, header_identity_harness)

    @conformance_test("headers.plugin-loads", PLUGIN_LOADS)
    def test_plugin_loads(self, headers: HeaderContext) -> None:
        """The plugin registers with the core plugin manager, implements the header hook and its
        harness's settings validate."""
        hooks = {i.name: i.hooks for i in headers.manager.plugins()}[headers.target.name]
        PLUGIN_LOADS.require(
            HOOK in hooks, f"plugin {headers.target.name!r} does not implement {HOOK} (hooks: {hooks})"
        )

    @conformance_test("headers.well-formed", HEADERS_WELL_FORMED)
    def test_well_formed(self, headers: HeaderContext) -> None:
        """For every endpoint kind, streaming or not, for users and for no user, the hook returns None
        or a dict of valid header names to values without control characters."""
        for endpoint, stream, identity in itertools.product(
            EndpointKind, (False, True), [*headers.user_identities(), None]
        ):
            result = headers.call(headers.request(endpoint, stream=stream), identity)
            found = problems(result)
            who = identity.principal if identity else "no user"
            HEADERS_WELL_FORMED.require(not found, f"{endpoint.value} call for {who}: {'; '.join(found)}")

    @conformance_test("headers.hostile-identity", HEADERS_WELL_FORMED)
    def test_hostile_identity(self, headers: HeaderContext) -> None:
        """Identities holding CR/LF, NUL, non-ASCII or very long values never produce a broken header
        (no header injection) and never crash the call."""
        for identity, endpoint in itertools.product(HOSTILE_IDENTITIES, EndpointKind):
            result = headers.call(headers.request(endpoint), identity)
            found = problems(result)
            HEADERS_WELL_FORMED.require(
                not found, f"{endpoint.value} call for principal {identity.principal[:40]!r}: {'; '.join(found)}"
            )

    @conformance_test("headers.user-headers-present", HEADERS_FOR_USER, requires="user_headers")
    def test_user_headers_present(self, headers: HeaderContext) -> None:
        """On the endpoint kinds the harness declares, every user's call carries every user header."""
        if not headers.harness.user_headers:
            pytest.skip(capability("user_headers").skip_reason())
        self._check_user_headers(headers, sorted(headers.harness.endpoints))

    @conformance_test("headers.user-headers-every-endpoint", HEADERS_FOR_USER, requires="every_endpoint")
    def test_user_headers_every_endpoint(self, headers: HeaderContext) -> None:
        """User headers reach every endpoint kind: chat, completions, embeddings, messages, rerank,
        models and health."""
        if not headers.harness.user_headers or set(headers.harness.endpoints) != set(EndpointKind):
            pytest.skip(capability("every_endpoint").skip_reason())
        self._check_user_headers(headers, list(EndpointKind))

    def _check_user_headers(self, headers: HeaderContext, endpoints: list[EndpointKind]) -> None:
        for endpoint, identity in itertools.product(endpoints, headers.user_identities()):
            result = headers.call(headers.request(endpoint), identity)
            got = lower(result.headers)
            missing = [h for h in headers.harness.user_headers if h.lower() not in got]
            HEADERS_FOR_USER.require(
                result.crashed is None and not missing,
                f"{endpoint.value} call for {identity.principal!r}: {result.describe()}, missing {missing}",
            )

    @conformance_test("headers.no-user-no-user-values", HEADERS_FOR_USER, requires="user_headers")
    def test_no_user_no_user_values(self, headers: HeaderContext) -> None:
        """A call made for no user (start-up model refresh, health) carries no user's header value."""
        if not headers.harness.user_headers:
            pytest.skip(capability("user_headers").skip_reason())
        user_values = {
            (name, value)
            for identity in headers.user_identities()
            for name, value in lower(headers.call(headers.request(), identity).headers).items()
            if name in {h.lower() for h in headers.harness.user_headers}
        }
        for endpoint in EndpointKind:
            result = headers.call(headers.request(endpoint), None)
            leaked = sorted(set(lower(result.headers).items()) & user_values)
            HEADERS_FOR_USER.require(
                result.crashed is None and not leaked,
                f"{endpoint.value} call for no user: {result.describe()}; carries user values {leaked}",
            )

    @conformance_test("headers.pure", HEADERS_PURE)
    def test_pure(self, headers: HeaderContext) -> None:
        """The same call twice gives the same headers."""
        for identity in [*headers.user_identities(), None]:
            first = headers.call(headers.request(), identity)
            second = headers.call(headers.request(), identity)
            HEADERS_PURE.require(
                first.headers == second.headers,
                f"two identical calls: {first.describe()} then {second.describe()}",
            )

    # -- core guarantee: no leak between concurrent requests -----------------------------------

    @conformance_test("headers.identity-argument-only", NO_CONCURRENT_LEAK)
    def test_identity_argument_only(self, headers: HeaderContext) -> None:
        """The hook reads the user from its ``identity`` argument only: called for user A while the
        context acts as user B (and, when the plugin identifies users too, right after it identified
        B), it returns exactly what it returns for A alone; called for no user, nothing of B's."""
        identities = headers.user_identities()
        request = headers.request()
        clean = {i.principal: headers.clean(request, i).headers for i in identities}
        clean_none = headers.clean(request, None).headers

        async def decoyed(target: Identity | None, bystander: Identity) -> HeaderCall:
            if headers.identity is not None:
                headers.identity.attempt(headers.identity.harness.request_for(_user_of(bystander)))
            with acting_as(bystander):
                return headers.call(request, target)

        for target, bystander in itertools.permutations(identities, 2):
            got = loop_runner().run(decoyed(target, bystander))
            NO_CONCURRENT_LEAK.require(
                got.headers == clean[target.principal],
                f"called for {target.principal!r} while acting as {bystander.principal!r}: {got.describe()}; "
                f"alone it returns {clean[target.principal]!r}",
            )
        for bystander in identities:
            got = loop_runner().run(decoyed(None, bystander))
            NO_CONCURRENT_LEAK.require(
                got.headers == clean_none,
                f"called for no user while acting as {bystander.principal!r}: {got.describe()}; "
                f"alone it returns {clean_none!r}",
            )

    @conformance_test("headers.concurrent-requests-isolated", NO_CONCURRENT_LEAK)
    def test_concurrent_requests_isolated(self, headers: HeaderContext) -> None:
        """Hundreds of concurrent asyncio tasks, each acting as a different user (identified by the
        plugin's own identity hook when it has one), each get the merged headers of their own user."""
        identities = headers.user_identities()
        request = headers.request()
        settings = {headers.target.name: headers.settings}
        expected = {i.principal: headers.manager.extra_request_headers(request, i, settings) for i in identities}
        plan = [identities[i % len(identities)] for i in range(300)]

        async def one(identity: Identity) -> tuple[str, dict[str, str] | BaseException]:
            with acting_as(identity):
                if headers.identity is not None:
                    headers.identity.attempt(headers.identity.harness.request_for(_user_of(identity)))
                await asyncio.sleep(0)
                try:
                    got = headers.manager.extra_request_headers(request, identity, settings)
                except Exception as e:  # noqa: BLE001
                    return identity.principal, e
                await asyncio.sleep(0)
                return identity.principal, got

        async def everyone() -> list[tuple[str, dict[str, str] | BaseException]]:
            return await asyncio.gather(*(one(i) for i in plan))

        for principal, got in loop_runner().run(everyone()):
            NO_CONCURRENT_LEAK.require(
                got == expected[principal],
                f"a concurrent call for {principal!r} got {got!r}, alone it gets {expected[principal]!r}",
            )

    # -- core guarantee: order independence ------------------------------------------------------

    @conformance_test("headers.merge-order-independent", ORDER_INDEPENDENCE)
    def test_merge_order_independent(self, headers: HeaderContext) -> None:
        """Registered beside other header plugins in every order, the merged headers are the same and
        include the plugin's own; a plugin setting one of its headers differently is refused in every
        order, naming the same two plugins."""
        name = headers.target.name
        others = [
            ("aaa-conformance-headers", companions.HeaderCompanion()),
            ("zzz-conformance-silent", companions.SilentCompanion()),
        ]
        settings = {name: headers.settings}
        for identity in [*headers.user_identities(), None]:
            request = headers.request()
            own = lower(headers.call(request, identity).headers)
            results = []
            for order in itertools.permutations([(name, headers.target.plugin), *others]):
                manager = _manager(order)
                results.append(manager.extra_request_headers(request, identity, settings))
            who = identity.principal if identity else "no user"
            ORDER_INDEPENDENCE.require(
                all(r == results[0] for r in results), f"merged headers for {who} depend on order: {results}"
            )
            missing = {k: v for k, v in own.items() if results[0].get(k) != v}
            ORDER_INDEPENDENCE.require(not missing, f"merged headers for {who} lost the plugin's own {missing}")
            if not own:
                continue
            contested = sorted(own)[0]
            rival = ("mmm-conformance-rival", companions.ConflictingHeaderCompanion(contested))
            named = set()
            for order in itertools.permutations([(name, headers.target.plugin), rival]):
                try:
                    merged = _manager(order).extra_request_headers(request, identity, settings)
                except HeaderConflict as conflict:
                    named.add(frozenset(conflict.plugins))
                    continue
                raise ORDER_INDEPENDENCE.fail(
                    f"a rival setting {contested!r} differently was accepted in order {[n for n, _ in order]}: {merged}"
                )
            ORDER_INDEPENDENCE.require(len(named) == 1, f"conflicts name different plugins by order: {named}")


def _manager(order: Iterable[tuple[str, object]]) -> PluginManager:
    manager = PluginManager()
    for name, plugin in order:
        manager.register(plugin, name)
    return manager


def _user_of(identity: Identity) -> TestUser:
    return TestUser(identity.principal or "", dict(identity.attributes), identity.tenant_id)
