"""The plugin as the host sees it: its entry point, its settings through the host, its headers merged
with other plugins' (a conflict names both), and the provider's fail-closed header lookup."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
import structlog
from fairness_helpers import person

from ogx_tenancy import EndpointKind, HeaderConflict, OutgoingRequest, Tenancy, acting_as, hookimpl, host
from ogx_tenancy.manager import PluginManager
from ogx_tenancy.settings import ConfigError
from ogx_tenancy_vllm_fairness import plugin
from ogx_tenancy_vllm_fairness.fairness import GIE_FAIRNESS_ID, GIE_OBJECTIVE
from ogx_tenancy_vllm_fairness.outgoing import OutgoingHeadersError, headers_for_call

CHAT = OutgoingRequest("remote::vllm-tenancy", "vllm", EndpointKind.CHAT, "test-chat", False)


class StaticHeaders:
    """Another plugin adding fixed headers."""

    def __init__(self, headers):
        self.headers = headers

    @hookimpl
    def ogx_tenancy_extra_request_headers(self, request, identity, settings):
        return dict(self.headers)


class Exploding:
    @hookimpl
    def ogx_tenancy_extra_request_headers(self, request, identity, settings):
        raise KeyError("bug in a plugin")


def tenancy(*others: tuple[str, object], settings: dict | None = None) -> Tenancy:
    manager = PluginManager()
    manager.register(plugin, "vllm_fairness")
    for name, other in others:
        manager.register(other, name)
    return Tenancy.from_config({"plugins": {"vllm_fairness": settings or {}}}, manager=manager)


def test_the_entry_point_is_installed_and_loads_the_plugin():
    (ep,) = [ep for ep in entry_points(group="ogx_tenancy") if ep.name == "vllm_fairness"]
    assert ep.value == "ogx_tenancy_vllm_fairness.plugin"
    manager = PluginManager()
    manager.load_entry_points([ep])
    (info,) = manager.plugins()
    assert info.error is None and info.distribution == "ogx-tenancy-vllm-fairness"
    assert info.hooks == ["ogx_tenancy_extra_request_headers", "ogx_tenancy_settings_model"]


def test_the_host_validates_the_settings_block():
    with pytest.raises(ConfigError, match=r"tenancy\.plugins\.vllm_fairness\.header_names"):
        tenancy(settings={"header_names": "nginx"})


def test_headers_for_a_user_and_for_no_user_through_the_host():
    host_ = tenancy(settings={"objective": {"attribute": "teams", "values": {"gold": "premium"}},
                              "system_id": "ogx-system"})
    assert host_.outgoing_headers(CHAT, person(tenant="acme", teams=["gold"])) == {
        GIE_FAIRNESS_ID: "acme", GIE_OBJECTIVE: "premium"}
    assert host_.outgoing_headers(CHAT, None) == {GIE_FAIRNESS_ID: "ogx-system"}


def test_other_plugins_headers_are_merged():
    host_ = tenancy(("trace", StaticHeaders({"X-Trace-Tenant": "on"})))
    assert host_.outgoing_headers(CHAT, person(tenant="acme")) == {GIE_FAIRNESS_ID: "acme", "x-trace-tenant": "on"}


def test_the_same_header_with_the_same_value_is_no_conflict():
    host_ = tenancy(("echo", StaticHeaders({GIE_FAIRNESS_ID: "acme"})))
    assert host_.outgoing_headers(CHAT, person(tenant="acme")) == {GIE_FAIRNESS_ID: "acme"}


@pytest.mark.parametrize("other_name", ["aaa_first", "zzz_last"])
def test_a_conflict_names_both_plugins_whatever_their_order(other_name):
    host_ = tenancy((other_name, StaticHeaders({"X-Gateway-Inference-Fairness-Id": "someone-else"})))
    with pytest.raises(HeaderConflict) as caught:
        host_.outgoing_headers(CHAT, person(tenant="acme"))
    assert caught.value.header == GIE_FAIRNESS_ID
    assert set(caught.value.plugins) == {"vllm_fairness", other_name}


# -- the provider's lookup: current user, fail closed ------------------------------------------


def test_headers_for_call_uses_the_current_identity():
    host.install(tenancy())
    assert headers_for_call(CHAT) == {}
    with acting_as(person(tenant="acme")):
        assert headers_for_call(CHAT) == {GIE_FAIRNESS_ID: "acme"}


def test_a_conflict_fails_the_call_and_logs_both_plugin_names():
    host.install(tenancy(("clash", StaticHeaders({GIE_FAIRNESS_ID: "fixed"}))))
    with structlog.testing.capture_logs() as logs, acting_as(person(tenant="acme")), \
            pytest.raises(OutgoingHeadersError) as caught:
        headers_for_call(CHAT)
    assert caught.value.status_code == 500
    assert "'clash'" in str(caught.value) and "'vllm_fairness'" in str(caught.value)
    assert GIE_FAIRNESS_ID in str(caught.value) and "acme" not in str(caught.value) and "fixed" not in str(caught.value)
    (entry,) = [e for e in logs if e["event"].startswith("outgoing header conflict")]
    assert sorted(entry["plugins"]) == ["clash", "vllm_fairness"] and entry["header"] == GIE_FAIRNESS_ID


def test_a_failing_plugin_fails_the_call_closed():
    host.install(tenancy(("broken", Exploding())))
    with acting_as(person()), pytest.raises(OutgoingHeadersError, match="could not be computed"):
        headers_for_call(CHAT)


@pytest.mark.parametrize("name", ["Authorization", "host", "content-length", "x-api-key"])
def test_a_plugin_may_not_set_a_protected_header(name):
    host.install(tenancy(("greedy", StaticHeaders({name: "mine"}))))
    with acting_as(person()), pytest.raises(OutgoingHeadersError, match=name.lower()):
        headers_for_call(CHAT)


def test_without_a_host_the_call_fails_closed():
    with pytest.raises(OutgoingHeadersError):
        headers_for_call(CHAT)
