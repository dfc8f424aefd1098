"""Pins every OGX 1.5 mechanism the services wiring relies on (``adapter/wiring.py``,
``prompts_api``, ``connectors_api``, ``admin_api``, ``batches_provider``, ``provider``).

If one of these fails after an OGX upgrade, prompts, connectors or batches may silently be served by
OGX's built-ins again (no tenant isolation) or not at all: fix the adapter before anything else.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from core_helpers import minimal_ogx_config

from ogx_tenancy.adapter import admin_api, batches_provider, connectors_api, ogx_bridge, prompts_api, wiring
from ogx_tenancy.adapter.service_errors import TenancyAPIError
from ogx_tenancy.services.config import ServicesSettings

ALL_SERVICES = ServicesSettings.model_validate({"prompts": {}, "connectors": {}, "batches": {}})


@pytest.fixture
def derived(tmp_path) -> dict:
    """A run config derived for all three services, as OGX will parse it."""
    raw = minimal_ogx_config(tmp_path)
    raw["connectors"] = [{"connector_id": "wiki", "url": "http://wiki/mcp"}]
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    config = wiring.derive_ogx_config(raw, ALL_SERVICES, runtime, ogx_bridge.parse_run_config(raw))
    (runtime / "run.yaml").write_text(yaml.safe_dump(config))
    return config


def test_prompts_connectors_and_admin_are_internal_apis_without_providers():
    """Why the external-API mechanism is needed: OGX offers no provider registry for them."""
    from ogx.core.distribution import INTERNAL_APIS, providable_apis
    from ogx_api import Api

    assert {Api.prompts, Api.connectors, Api.admin} <= INTERNAL_APIS
    assert not {Api.prompts, Api.connectors, Api.admin} & set(providable_apis())
    assert Api.batches in providable_apis()


def test_external_api_names_resolve_to_the_builtin_api_members(derived):
    from ogx.core.external import load_external_apis
    from ogx_api import Api

    external = load_external_apis(ogx_bridge.parse_run_config(derived))
    assert set(external) == {Api.prompts, Api.connectors, Api.admin}  # Api.add returned the existing members
    assert {api: spec.module for api, spec in external.items()} == {
        Api.prompts: prompts_api.__name__,
        Api.connectors: connectors_api.__name__,
        Api.admin: admin_api.__name__,
    }


def test_the_provider_registry_offers_our_providers_for_all_four_apis(derived):
    from ogx.core.distribution import get_provider_registry
    from ogx_api import Api

    registry = get_provider_registry(ogx_bridge.parse_run_config(derived))
    assert set(registry[Api.prompts]) == {prompts_api.PROVIDER_TYPE}
    assert set(registry[Api.connectors]) == {connectors_api.PROVIDER_TYPE}
    assert set(registry[Api.admin]) == {admin_api.PROVIDER_TYPE}
    # the batches provider through `module: ogx_tenancy.adapter` -> ogx_tenancy.adapter.provider
    spec = registry[Api.batches][batches_provider.PROVIDER_TYPE]
    assert spec.module == batches_provider.__name__
    assert set(spec.api_dependencies) == {Api.inference, Api.files, Api.models}


def test_ogx_accepts_and_orders_the_derived_providers(derived):
    """The resolver validates our entries and instantiates connectors before admin and responses."""
    from ogx.core.distribution import builtin_automatically_routed_apis, get_provider_registry
    from ogx.core.resolver import sort_providers_by_deps, validate_and_prepare_providers

    config = ogx_bridge.parse_run_config(derived)
    auto = builtin_automatically_routed_apis()
    specs = validate_and_prepare_providers(
        config,
        get_provider_registry(config),
        {x.routing_table_api for x in auto},
        {x.router_api for x in auto},
    )
    assert {"prompts", "connectors", "admin", "batches"} <= set(specs)
    order = [api for api, _ in sort_providers_by_deps(specs, config)]
    assert order.index("connectors") < order.index("admin")
    assert config.connectors == []  # OGX's own start-up registration has nothing to register


def test_resolved_impls_replace_the_internal_ones():
    """``instantiate_providers`` starts from a copy of the internal impls and overwrites per API."""
    from ogx.core import resolver

    source = inspect.getsource(resolver.instantiate_providers)
    assert "internal_impls.copy()" in source and "impls[api] = impl" in source


def test_builtin_routers_are_kept_and_call_the_impl():
    from ogx.core.server import fastapi_router_registry as registry
    from ogx.core.server import server

    assert {"prompts", "admin"} <= set(registry._ROUTER_FACTORIES)
    assert "connectors" not in registry._ROUTER_FACTORIES  # no HTTP routes of its own: admin serves them
    assert "if api.value in _ROUTER_FACTORIES" in inspect.getsource(registry.register_external_api_routers)
    assert "build_fastapi_router(api, impl)" in inspect.getsource(server.lifespan)
    assert "admin" in server.ALWAYS_SERVED_APIS


def test_builtin_admin_keeps_its_own_connectors_reference():
    """Why admin is replaced too: the built-in AdminImpl reads the internal dict, not the resolved one."""
    from ogx.core import stack
    from ogx.core.admin import AdminImpl

    source = inspect.getsource(stack.add_internal_implementations)
    assert "AdminImpl(" in source and "deps=impls" in source and "impls[Api.connectors]" in source
    assert isinstance(inspect.getattr_static(AdminImpl, "_connectors"), property)
    for method in ("list_connectors", "get_connector", "list_connector_tools", "get_connector_tool"):
        assert "self._connectors." in inspect.getsource(getattr(AdminImpl, method))
    assert isinstance(inspect.getattr_static(admin_api.TenancyAdmin, "_connectors"), property)


def test_builtin_connector_registration_lists_without_a_user():
    """OGX's start-up registration prunes what ``list_connectors()`` returns; ours lists nothing there."""
    from ogx.core import stack

    source = inspect.getsource(stack.register_connectors)
    assert "run_config.connectors" in source and "list_connectors()" in source and "unregister_connector" in source


def test_our_impls_implement_every_method_of_ogx_protocols():
    """OGX's routers call the protocol's methods on our impls (its own compliance check only looks at
    methods with ``__webmethods__``, which 1.5's protocols no longer have), so check them here."""
    from ogx_api import Admin, Batches, Connectors, Prompts

    for cls, protocol in (
        (prompts_api.TenancyPrompts, Prompts),
        (connectors_api.TenancyConnectors, Connectors),
        (admin_api.TenancyAdmin, Admin),
        (batches_provider.TenancyBatches, Batches),
    ):
        methods = [name for name, value in vars(protocol).items() if inspect.isfunction(value) and name[0] != "_"]
        assert methods, protocol
        for name in methods:
            ours = getattr(cls, name)
            assert ours is not getattr(protocol, name), f"{cls.__name__}.{name} is the protocol stub"
            wanted = set(inspect.signature(getattr(protocol, name)).parameters)
            assert wanted <= set(inspect.signature(ours).parameters), f"{cls.__name__}.{name} signature"


def test_reference_batches_processing_stores_only_through_the_methods_we_override():
    from ogx.providers.inline.batches.reference.batches import ReferenceBatchesImpl

    parameters = list(inspect.signature(ReferenceBatchesImpl.__init__).parameters)
    assert parameters == ["self", "config", "inference_api", "files_api", "models_api", "sql_store", "route_policy"]
    for name in ("_process_batch", "_process_batch_impl", "_validate_input", "_process_single_request"):
        source = inspect.getsource(getattr(ReferenceBatchesImpl, name))
        assert "sql_store" not in source, f"{name} now reads the SQL store directly"
    assert "self._update_batch(" in inspect.getsource(ReferenceBatchesImpl._process_batch)
    assert "except asyncio.CancelledError" in inspect.getsource(ReferenceBatchesImpl._process_batch)
    assert "self.retrieve_batch(" in inspect.getsource(ReferenceBatchesImpl._process_batch_impl)
    assert "self.config.max_concurrent_requests_per_batch" in inspect.getsource(
        ReferenceBatchesImpl._process_batch_impl
    )
    impl = ReferenceBatchesImpl.__new__(ReferenceBatchesImpl)
    ReferenceBatchesImpl.__init__(impl, batches_provider.TenancyBatchesConfig(), None, None, None, None, [])
    assert impl._processing_tasks == {} and impl.process_batches is True


def test_provider_impl_factories_get_what_they_declare():
    """OGX passes policy and route_policy to get_provider_impl only when the signature names them."""
    assert "route_policy" in inspect.signature(batches_provider.get_provider_impl).parameters
    from ogx.core import resolver

    assert '"route_policy" in inspect.signature' in inspect.getsource(resolver.instantiate_provider)


def test_our_errors_keep_their_status_in_ogx():
    from ogx.core.exceptions.translation import translate_exception
    from ogx_api.router_utils import try_translate_to_http_exception

    for status in (400, 403, 404, 409):
        assert translate_exception(TenancyAPIError(status, "x")).status_code == status
        assert try_translate_to_http_exception(TenancyAPIError(status, "x")).status_code == status


def test_our_errors_reach_a_handler_that_does_not_reraise():
    # OGX's generic Exception handler re-raises to uvicorn after responding (dropped connection, a
    # stalled event loop while rich renders the traceback); ConflictError has its own handler.
    from ogx.core.server import server
    from ogx_api import ConflictError

    assert issubclass(TenancyAPIError, ConflictError)
    assert "app.exception_handler(ConflictError)(global_exception_handler)" in inspect.getsource(server.create_app)


def test_mcp_helpers_and_route_check_signatures():
    from ogx.core.access_control.route_access import is_route_allowed
    from ogx.providers.utils.tools import mcp

    assert {"endpoint", "authorization"} <= set(inspect.signature(mcp.get_mcp_server_info).parameters)
    assert {"endpoint", "authorization"} <= set(inspect.signature(mcp.list_mcp_tools).parameters)
    assert list(inspect.signature(is_route_allowed).parameters)[:3] == ["route", "user", "route_policy"]


def test_derived_external_api_specs_parse_as_ogx_specs(derived):
    from ogx_api import ExternalApiSpec

    for path in Path(derived["external_apis_dir"]).glob("*.yaml"):
        ExternalApiSpec(**yaml.safe_load(path.read_text()))
