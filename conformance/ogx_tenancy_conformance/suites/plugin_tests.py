"""The no-code plugin suite: every family of the plugin named by ``--conformance-plugin``.

``ogx-tenancy-conformance plugin NAME`` runs this module. The plugin is loaded from the
``ogx_tenancy`` entry-point group and its harnesses from its ``ConformanceProfile`` in the
``ogx_tenancy_conformance`` group; families the plugin does not implement are deselected.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from ..discovery import DiscoveryError, Target, load_target
from ..harness import HeaderHarness, IdentityHarness, StorageHarness
from ._base import PluginUnderTest
from .headers import HeaderSuite
from .identity import IdentitySuite
from .storage import StorageSuite

HOOK_OF_FAMILY = {
    "identity": "ogx_tenancy_identity",
    "storage": "ogx_tenancy_storage_backends",
    "headers": "ogx_tenancy_extra_request_headers",
}


@cache
def _target(name: str) -> Target:
    return load_target(name)


def target_of(config: pytest.Config) -> Target:
    name = config.getoption("conformance_plugin", None)
    if not name:
        pytest.fail("pass --conformance-plugin NAME (or run `ogx-tenancy-conformance plugin NAME`)", pytrace=False)
    try:
        return _target(name)
    except DiscoveryError as e:
        pytest.fail(str(e), pytrace=False)


def missing_harness(target: Target, family: str) -> str:
    return (
        f"plugin {target.name!r} implements {HOOK_OF_FAMILY[family]} but declares no {family} harness: register a "
        f"ConformanceProfile with `{family} = <your {family.capitalize()}Harness>` in the entry-point group "
        f"'ogx_tenancy_conformance' under the name {target.name!r} (see the ogx-tenancy-conformance README)"
    )


class _FromPluginOption:
    conformance_family: str = ""

    @pytest.fixture
    def conformance_plugin(self, request: pytest.FixtureRequest) -> PluginUnderTest:
        target = target_of(request.config)
        return PluginUnderTest(target.name, target.plugin)

    def harness_instance(self, config: pytest.Config | None = None) -> Any:
        if config is None:
            return None
        try:
            target = target_of(config)
        except pytest.fail.Exception:
            return None
        return _instance(getattr(target.profile, self.conformance_family, None)) if target.profile else None


def _instance(harness: Any) -> Any:
    return harness() if isinstance(harness, type) else harness


class TestIdentity(_FromPluginOption, IdentitySuite):
    conformance_family = "identity"

    @pytest.fixture
    def identity_harness(self, request: pytest.FixtureRequest) -> IdentityHarness:
        harness = self.harness_instance(request.config)
        if not isinstance(harness, IdentityHarness):
            pytest.fail(missing_harness(target_of(request.config), "identity"), pytrace=False)
        return harness


class TestStorage(_FromPluginOption, StorageSuite):
    conformance_family = "storage"

    def plugin_under_test(self, config: pytest.Config) -> PluginUnderTest:
        target = target_of(config)
        return PluginUnderTest(target.name, target.plugin)

    @pytest.fixture
    def storage_harness(self, request: pytest.FixtureRequest) -> StorageHarness:
        harness = self.harness_instance(request.config)
        if not isinstance(harness, StorageHarness):
            pytest.fail(missing_harness(target_of(request.config), "storage"), pytrace=False)
        return harness


class TestHeaders(_FromPluginOption, HeaderSuite):
    conformance_family = "headers"

    @pytest.fixture
    def header_harness(self, request: pytest.FixtureRequest) -> HeaderHarness:
        harness = self.harness_instance(request.config)
        return harness if isinstance(harness, HeaderHarness) else HeaderHarness()

    @pytest.fixture
    def header_identity_harness(self, request: pytest.FixtureRequest) -> IdentityHarness | None:
        target = target_of(request.config)
        if "identity" not in target.families() or target.profile is None:
            return None
        harness = _instance(target.profile.identity)
        return harness if isinstance(harness, IdentityHarness) else None
