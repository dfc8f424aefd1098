"""The tenancy: section, plugin settings validation, tenancy modes, anonymous access, storage choice."""

from __future__ import annotations

import pytest
from core_helpers import make_module
from pydantic import BaseModel, ConfigDict, Field

from ogx_tenancy import hookimpl, host
from ogx_tenancy.host import Tenancy
from ogx_tenancy.settings import ConfigError
from ogx_tenancy.types import EndpointKind, Identity, IdentityRejected, IncomingRequest, OutgoingRequest, RequestHeaders


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    header: str = "x-user"
    max_values: int = Field(64, ge=1)
    cidrs: list[str] = []


@hookimpl
def ogx_tenancy_settings_model():
    return GatewaySettings


@hookimpl
def ogx_tenancy_identity(request, settings):
    user = request.headers.get_single(settings.header)
    tenant = request.headers.get_single("x-tenant")
    return Identity(user, {}, tenant) if user else None


@hookimpl
def ogx_tenancy_extra_request_headers(identity):
    return {"x-tenant-id": identity.tenant_id or "none"} if identity else None


@pytest.fixture
def gateway_manager(manager):
    manager.register(
        make_module(
            "mod_gateway",
            ogx_tenancy_settings_model=ogx_tenancy_settings_model,
            ogx_tenancy_identity=ogx_tenancy_identity,
            ogx_tenancy_extra_request_headers=ogx_tenancy_extra_request_headers,
        ),
        "gateway",
    )
    return manager


def incoming(**headers: str) -> IncomingRequest:
    pairs = [(name.replace("_", "-"), value) for name, value in headers.items()]
    return IncomingRequest("GET", "/v1/prompts", ("127.0.0.1", 1), RequestHeaders.from_pairs(pairs))


def test_plugin_settings_are_validated_by_the_plugins_model(gateway_manager):
    tenancy = Tenancy.from_config({"plugins": {"gateway": {"header": "x-maas-username"}}}, manager=gateway_manager)
    assert tenancy.plugin_settings["gateway"] == GatewaySettings(header="x-maas-username")
    assert tenancy.identify(incoming(x_maas_username="alice")) == Identity("alice")


def test_absent_block_gets_defaults(gateway_manager):
    assert Tenancy.from_config(None, manager=gateway_manager).plugin_settings["gateway"] == GatewaySettings()


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            {"plugins": {"gateway": {"headr": "x"}}},
            "plugin 'gateway': tenancy.plugins.gateway.headr: unknown key (expected one of: cidrs, header, max_values)",
        ),
        (
            {"plugins": {"gateway": {"max_values": 0}}},
            "tenancy.plugins.gateway.max_values: Input should be greater than or equal to 1 (got int)",
        ),
        (
            {"plugins": {"gateway": {"cidrs": "10.0.0.0/8"}}},
            "tenancy.plugins.gateway.cidrs: Input should be a valid list (got str)",
        ),
        ({"plugins": {"gateway": ["x"]}}, "tenancy.plugins.gateway"),
        (
            {"plugins": {"nosuch": {}}},
            "tenancy.plugins.nosuch: no active plugin named 'nosuch' (active plugins: gateway)",
        ),
        ({"plugin": {}}, "tenancy.plugin: unknown key (expected one of: anonymous, plugins, services, storage)"),
        ({"storage": {"backend": "sqlite"}}, "tenancy.storage.backend: unknown backend 'sqlite'"),
        ({"anonymous": {"principal": ""}}, "tenancy.anonymous.principal"),
        ("yes", "tenancy: expected a mapping"),
    ],
)
def test_bad_settings_stop_startup_with_a_message_naming_the_key(gateway_manager, section, expected):
    with pytest.raises(ConfigError) as info:
        Tenancy.from_config(section, manager=gateway_manager)
    assert expected in str(info.value)


def test_secret_values_are_not_echoed_in_config_errors(gateway_manager):
    with pytest.raises(ConfigError) as info:
        Tenancy.from_config({"plugins": {"gateway": {"max_values": "s3cr3t-value"}}}, manager=gateway_manager)
    assert "s3cr3t-value" not in str(info.value)


def test_bad_access_policy_stops_startup(gateway_manager):
    with pytest.raises(ConfigError, match=r"server\.auth\.access_policy rule 0"):
        Tenancy.from_config(
            None, manager=gateway_manager, access_policy=[{"permit": {"actions": ["read"]}, "when": "bogus"}]
        )


def test_no_identity_without_anonymous_and_with_it(gateway_manager):
    assert Tenancy.from_config(None, manager=gateway_manager).identify(incoming()) is None
    tenancy = Tenancy.from_config(
        {"anonymous": {"principal": "guest", "attributes": {"roles": ["guest"]}}}, manager=gateway_manager
    )
    assert tenancy.identify(incoming()) == Identity("guest", {"roles": ["guest"]})


def test_single_tenancy_mode_puts_everyone_in_the_default_tenant(gateway_manager):
    tenancy = Tenancy.from_config(None, manager=gateway_manager, tenancy_mode="single", default_tenant_id="acme")
    assert tenancy.identify(incoming(x_user="alice", x_tenant="other")).tenant_id == "acme"


def test_multi_tenancy_mode_requires_a_tenant(gateway_manager):
    tenancy = Tenancy.from_config(None, manager=gateway_manager, tenancy_mode="multi")
    assert tenancy.identify(incoming(x_user="alice", x_tenant="t1")).tenant_id == "t1"
    with pytest.raises(IdentityRejected) as info:
        tenancy.identify(incoming(x_user="alice"))
    assert info.value.status == 401


def test_single_mode_needs_a_default_tenant(gateway_manager):
    with pytest.raises(ConfigError, match="default_tenant_id"):
        Tenancy.from_config(None, manager=gateway_manager, tenancy_mode="single")


def test_outgoing_headers_in_one_call_for_the_current_identity(gateway_manager):
    from ogx_tenancy.context import acting_as

    host.install(Tenancy.from_config(None, manager=gateway_manager))
    out = OutgoingRequest("remote::vllm", "vllm", EndpointKind.EMBEDDINGS)
    with acting_as(Identity("alice", tenant_id="t7")):
        assert host.outgoing_headers(out) == {"x-tenant-id": "t7"}
    assert host.outgoing_headers(out) == {}
    assert host.outgoing_headers(out, Identity("bob", tenant_id="t8")) == {"x-tenant-id": "t8"}


def test_current_without_a_host_says_how_to_start_one():
    with pytest.raises(RuntimeError, match="ogx-tenancy run"):
        host.current()


async def test_storage_backend_is_chosen_validated_and_opened_once(manager):
    opened = []

    class MemoryConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        size: int = 1

    class Backend:
        async def open_store(self, collection, policy):
            return (collection, policy)

        async def close(self):
            opened.append("closed")

    async def factory(config):
        opened.append(config)
        return Backend()

    @hookimpl
    def ogx_tenancy_storage_backends(register):
        register("memory", MemoryConfig, factory)

    manager.register(make_module("mod_memory", ogx_tenancy_storage_backends=ogx_tenancy_storage_backends), "memstore")
    with pytest.raises(ConfigError, match=r"plugin 'memstore': tenancy\.storage\.config\.sise: unknown key"):
        Tenancy.from_config({"storage": {"backend": "memory", "config": {"sise": 2}}}, manager=manager)
    tenancy = Tenancy.from_config({"storage": {"backend": "memory", "config": {"size": 2}}}, manager=manager)
    first = await tenancy.open_store("prompts")
    second = await tenancy.open_store("batches")
    assert opened == [MemoryConfig(size=2)] and first[1] is tenancy.policy and second[0] == "batches"
    await tenancy.close()
    assert opened[-1] == "closed"
