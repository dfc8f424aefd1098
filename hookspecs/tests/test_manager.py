"""Plugin loading (error boundaries, allow/deny lists, de-duplication, misspelt hooks, tracing)
and one ``test_hook_<name>`` per hook, calling it through the manager."""

from __future__ import annotations

import pytest
import structlog
from core_helpers import make_entry_point, make_module
from pydantic import BaseModel, ConfigDict

from ogx_tenancy import hookimpl
from ogx_tenancy.manager import PluginManager
from ogx_tenancy.types import (
    EndpointKind,
    HeaderConflict,
    Identity,
    IdentityRejected,
    IncomingRequest,
    OutgoingRequest,
    RequestHeaders,
)


def request(*headers: tuple[str, str]) -> IncomingRequest:
    return IncomingRequest("GET", "/v1/files", ("10.0.0.1", 5555), RequestHeaders.from_pairs(headers))


OUT = OutgoingRequest("remote::vllm", "vllm", EndpointKind.CHAT, "m")


class PrefixSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = ""


def identity_plugin(name: str):
    @hookimpl
    def ogx_tenancy_settings_model():
        return PrefixSettings

    @hookimpl
    def ogx_tenancy_identity(request, settings):
        user = request.headers.get_single("x-user")
        return Identity(settings.prefix + user) if user else None

    return make_module(
        name, ogx_tenancy_settings_model=ogx_tenancy_settings_model, ogx_tenancy_identity=ogx_tenancy_identity
    )


def test_hook_ogx_tenancy_settings_model(manager):
    manager.register(identity_plugin("mod_settings"), "with_settings")
    manager.register(make_module("mod_bare"), "bare")
    assert manager.settings_models() == {"with_settings": PrefixSettings, "bare": None}


def test_hook_ogx_tenancy_identity(manager):
    """Each plugin gets its own settings; results merge."""
    manager.register(identity_plugin("mod_id_a"), "a")

    @hookimpl
    def ogx_tenancy_identity(settings):
        return Identity(None, {"teams": [settings]})

    manager.register(make_module("mod_id_b", ogx_tenancy_identity=ogx_tenancy_identity), "b")
    identity = manager.identify(request(("x-user", "alice")), {"a": PrefixSettings(prefix="gw:"), "b": "team-b"})
    assert identity == Identity("gw:alice", {"teams": ["team-b"]})
    assert manager.identify(request(), {"a": PrefixSettings(), "b": "x"}) is None


def test_hook_ogx_tenancy_storage_backends(manager):
    class Config(BaseModel):
        path: str

    async def factory(config):
        raise NotImplementedError

    @hookimpl
    def ogx_tenancy_storage_backends(register):
        register("memory", Config, factory)

    manager.register(make_module("mod_store", ogx_tenancy_storage_backends=ogx_tenancy_storage_backends), "store")
    backends = manager.storage_backends()
    assert list(backends) == ["memory"]
    assert backends["memory"].plugin == "store" and backends["memory"].config_model is Config

    manager.register(make_module("mod_store2", ogx_tenancy_storage_backends=ogx_tenancy_storage_backends), "store2")
    with pytest.raises(ValueError, match=r"store.*store2|store2.*store"):
        manager.storage_backends()


def test_hook_ogx_tenancy_extra_request_headers(manager):
    @hookimpl
    def ogx_tenancy_extra_request_headers(request, identity):
        return {"X-Fairness": identity.tenant_id, "x-endpoint": request.endpoint.value} if identity else None

    manager.register(make_module("mod_hdr", ogx_tenancy_extra_request_headers=ogx_tenancy_extra_request_headers), "hdr")
    assert manager.extra_request_headers(OUT, Identity("a", tenant_id="t1"), {}) == {
        "x-fairness": "t1",
        "x-endpoint": "chat",
    }
    assert manager.extra_request_headers(OUT, None, {}) == {}

    @hookimpl
    def ogx_tenancy_extra_request_headers_other(request, identity):
        return {"x-fairness": "other"}

    manager.register(
        make_module("mod_hdr2", ogx_tenancy_extra_request_headers=ogx_tenancy_extra_request_headers_other), "hdr2"
    )
    with pytest.raises(HeaderConflict, match="hdr"):
        manager.extra_request_headers(OUT, Identity("a", tenant_id="t1"), {})


def test_plugin_that_fails_to_import_is_reported_and_the_rest_load(manager):
    identity_plugin("mod_good")
    manager.load_entry_points(
        [
            make_entry_point("broken", "mod_does_not_exist_anywhere", dist="broken-dist"),
            make_entry_point("good", "mod_good", dist="good-dist", version="2.0"),
        ]
    )
    infos = {info.name: info for info in manager.plugins()}
    assert "ModuleNotFoundError" in infos["broken"].error
    assert infos["broken"].distribution == "broken-dist"
    assert infos["good"].error is None and infos["good"].version == "2.0"
    assert "ogx_tenancy_identity" in infos["good"].hooks
    assert manager.active_plugins() == ["good"]


def test_plugin_raising_anything_on_import_is_contained(manager):
    sys_exit_module = "mod_exits_on_import"
    import sys

    sys.modules.pop(sys_exit_module, None)

    class ExitingFinder:
        def find_spec(self, name, path=None, target=None):
            if name == sys_exit_module:
                raise SystemExit(3)
            return None

    finder = ExitingFinder()
    sys.meta_path.insert(0, finder)
    try:
        manager.load_entry_points([make_entry_point("exits", sys_exit_module)])
    finally:
        sys.meta_path.remove(finder)
    assert "SystemExit" in manager.plugins()[0].error


def test_allow_and_deny_lists(manager, monkeypatch):
    identity_plugin("mod_allow_a")
    identity_plugin("mod_allow_b")
    eps = [make_entry_point("a", "mod_allow_a", dist="da"), make_entry_point("b", "mod_allow_b", dist="db")]
    monkeypatch.setenv("OGX_TENANCY_PLUGINS", "a")
    manager.load_entry_points(eps)
    assert manager.active_plugins() == ["a"]
    assert [i.name for i in manager.plugins()] == ["a"]
    assert {i.name: i.disabled for i in manager.plugins(include_disabled=True)}["b"].startswith("not listed")

    monkeypatch.delenv("OGX_TENANCY_PLUGINS")
    monkeypatch.setenv("OGX_TENANCY_DISABLED_PLUGINS", "a, b")
    other = PluginManager()
    other.load_entry_points(eps)
    assert other.active_plugins() == []


def test_same_distribution_seen_twice_registers_once(manager):
    identity_plugin("mod_dup")
    ep = make_entry_point("dup", "mod_dup", dist="Dup_Dist")
    twin = make_entry_point("dup", "mod_dup", dist="dup-dist")
    manager.load_entry_points([ep, twin])
    assert manager.active_plugins() == ["dup"]
    assert [i.error for i in manager.plugins()] == [None]


def test_two_distributions_claiming_one_name(manager):
    identity_plugin("mod_name_1")
    identity_plugin("mod_name_2")
    manager.load_entry_points(
        [make_entry_point("same", "mod_name_1", dist="one"), make_entry_point("same", "mod_name_2", dist="two")]
    )
    errors = [i.error for i in manager.plugins() if i.error]
    assert len(errors) == 1 and "already used by distribution 'one'" in errors[0]


def test_misspelt_marked_hook_fails_loudly(manager):
    @hookimpl
    def ogx_tenancy_identiy(request):
        return None

    manager.register(make_module("mod_typo", ogx_tenancy_identiy=ogx_tenancy_identiy), "typo")
    [info] = manager.plugins()
    assert "ogx_tenancy_identiy" in info.error
    assert manager.active_plugins() == []


def test_misspelt_unmarked_hook_fails_loudly(manager):
    def ogx_tenancy_extra_headers(request, identity):
        return {"x": "y"}

    manager.register(make_module("mod_typo2", ogx_tenancy_extra_headers=ogx_tenancy_extra_headers), "typo2")
    assert "unknown hook" in manager.plugins()[0].error


def test_marked_hook_without_prefix_is_caught_by_check_pending(manager):
    @hookimpl
    def identity(request):
        return None

    manager.register(make_module("mod_unprefixed", identity=identity), "unprefixed")
    assert "unknown hook" in manager.plugins()[0].error
    assert manager.active_plugins() == []


def test_hook_argument_with_default_is_refused(manager):
    @hookimpl
    def ogx_tenancy_identity(request, settings=None):
        return None

    manager.register(make_module("mod_default", ogx_tenancy_identity=ogx_tenancy_identity), "defaulted")
    assert "default value" in manager.plugins()[0].error


def test_hook_with_extra_argument_is_refused(manager):
    @hookimpl
    def ogx_tenancy_identity(request, settings, database):
        return None

    manager.register(make_module("mod_extra", ogx_tenancy_identity=ogx_tenancy_identity), "extra")
    assert "invalid hook implementation" in manager.plugins()[0].error


def test_identity_hook_failures_fail_closed(manager):
    @hookimpl
    def ogx_tenancy_identity(request):
        raise KeyError("bug")

    manager.register(make_module("mod_bug", ogx_tenancy_identity=ogx_tenancy_identity), "bug")
    with pytest.raises(IdentityRejected) as info:
        manager.identify(request(), {})
    assert info.value.status == 401


def test_identity_hook_returning_the_wrong_type_fails_closed(manager):
    @hookimpl
    def ogx_tenancy_identity(request):
        return {"principal": "alice"}

    manager.register(make_module("mod_wrongtype", ogx_tenancy_identity=ogx_tenancy_identity), "wrong")
    with pytest.raises(IdentityRejected):
        manager.identify(request(), {})


def test_rejection_from_a_plugin_passes_through(manager):
    @hookimpl
    def ogx_tenancy_identity(request):
        raise IdentityRejected(403, "untrusted peer")

    manager.register(make_module("mod_reject", ogx_tenancy_identity=ogx_tenancy_identity), "reject")
    with pytest.raises(IdentityRejected) as info:
        manager.identify(request(), {})
    assert info.value.status == 403


def test_trace_env_var_logs_hook_calls_without_values(monkeypatch):
    monkeypatch.setenv("OGX_TENANCY_TRACE_HOOKS", "1")
    traced = PluginManager()
    traced.register(identity_plugin("mod_traced"), "traced")
    with structlog.testing.capture_logs() as logs:
        traced.identify(request(("x-user", "alice")), {"traced": PrefixSettings()})
    calls = [entry for entry in logs if entry["event"] == "hook call"]
    assert calls and calls[0]["plugin"] == "traced" and calls[0]["hook"] == "ogx_tenancy_identity"
    assert "alice" not in str(calls)


def test_no_trace_by_default(manager):
    manager.register(identity_plugin("mod_untraced"), "untraced")
    with structlog.testing.capture_logs() as logs:
        manager.identify(request(("x-user", "alice")), {"untraced": PrefixSettings()})
    assert not [entry for entry in logs if entry["event"] == "hook call"]
