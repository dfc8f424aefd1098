"""``tenancy.services`` settings, the start-up checks, and the run config OGX is given."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from core_helpers import make_module, minimal_ogx_config
from memory_store import MemoryBackend
from pydantic import BaseModel

from ogx_tenancy import hookimpl
from ogx_tenancy.adapter import wiring
from ogx_tenancy.adapter.runconfig import load_run_config
from ogx_tenancy.manager import PluginManager
from ogx_tenancy.services.config import ServicesSettings
from ogx_tenancy.settings import ConfigError


class NoConfig(BaseModel):
    pass


@hookimpl
def ogx_tenancy_storage_backends(register):
    async def factory(config):
        return MemoryBackend()

    register("memory", NoConfig, factory)


def with_memory_storage() -> PluginManager:
    manager = PluginManager()
    manager.register(make_module("mod_wiring_memory", ogx_tenancy_storage_backends=ogx_tenancy_storage_backends), "mem")
    return manager


def write_config(tmp_path: Path, services, *, storage: bool = True, **top) -> Path:
    config = minimal_ogx_config(tmp_path) | top
    config["tenancy"] = {"services": services} | ({"storage": {"backend": "memory"}} if storage else {})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_naming_a_service_turns_it_on():
    settings = ServicesSettings.model_validate({"prompts": None, "connectors": True, "batches": {"enabled": False}})
    assert settings.enabled() == ["prompts", "connectors"]
    assert ServicesSettings().enabled() == []


@pytest.mark.parametrize(
    ("services", "top", "storage", "message"),
    [
        ({"prompts": {}}, {}, False, "tenancy.services: prompts need a store; set tenancy.storage"),
        (
            {"batches": {}},
            {"providers": {"batches": [{"provider_id": "ref", "provider_type": "inline::reference", "config": {}}]}},
            True,
            "providers.batches: remove inline::reference; tenancy.services.batches serves /v1/batches",
        ),
        (
            {"connectors": {"tenants": {"acme": [{"connector_id": "wiki", "url": "http://a/mcp"}]}}},
            {"connectors": [{"connector_id": "wiki", "url": "http://w/mcp"}]},
            True,
            "tenancy.services.connectors.tenants.acme: connector id(s) ['wiki'] are already global connectors",
        ),
        ({"batches": {"max_concurrent_batches": 0}}, {}, True, "tenancy.services.batches.max_concurrent_batches"),
        ({"prompt": {}}, {}, True, "tenancy.services.prompt: unknown key"),
    ],
)
def test_bad_services_stop_startup_naming_the_key(tmp_path, services, top, storage, message):
    path = write_config(tmp_path, services, storage=storage, **top)
    with pytest.raises(ConfigError) as error:
        load_run_config(path, manager=with_memory_storage())
    assert message in str(error.value)


def test_external_api_of_the_operator_clashing_with_a_service_is_refused(tmp_path):
    apis = tmp_path / "apis"
    apis.mkdir()
    (apis / "mine.yaml").write_text(yaml.safe_dump({"name": "prompts", "module": "x", "protocol": "P"}))
    path = write_config(tmp_path, {"prompts": {}}, external_apis_dir=str(apis))
    with pytest.raises(ConfigError, match=r"external_apis_dir: .* defines the 'prompts' API"):
        load_run_config(path, manager=with_memory_storage())


def test_derived_config_adds_our_providers_and_moves_connectors(tmp_path):
    apis = tmp_path / "apis"
    apis.mkdir()
    (apis / "weather.yaml").write_text(yaml.safe_dump({"name": "weather", "module": "w", "protocol": "W"}))
    path = write_config(
        tmp_path,
        {
            "prompts": {},
            "connectors": {"tenants": {"acme": [{"connector_id": "crm", "url": "http://crm/mcp"}]}},
            "batches": {"max_concurrent_batches": 3},
        },
        connectors=[{"connector_id": "wiki", "url": "${env.WIKI_URL:=http://wiki/mcp}"}],
        external_apis_dir=str(apis),
        apis=["files"],
    )
    loaded = load_run_config(path, manager=with_memory_storage())
    with wiring.generated_run_config(loaded) as generated:
        derived = yaml.safe_load(generated.read_text())
        external = {p.stem for p in Path(derived["external_apis_dir"]).glob("*.yaml")}
        runtime = generated.parent
    assert not runtime.exists()  # removed with the server
    assert external == {"prompts", "connectors", "admin", "weather"}
    assert "tenancy" not in derived and derived["connectors"] == []
    assert derived["apis"] == ["files", "prompts", "batches"]
    providers = derived["providers"]
    assert providers["prompts"][0]["provider_type"] == "inline::ogx-tenancy"
    assert providers["connectors"][0]["config"] == {
        "connectors": [{"connector_id": "wiki", "url": "${env.WIKI_URL:=http://wiki/mcp}"}],  # OGX substitutes
        "tenants": {
            "acme": [{"connector_id": "crm", "connector_type": "mcp", "url": "http://crm/mcp", "server_label": None}]
        },
    }
    assert providers["admin"][0]["config"] == {"run_config": str(generated)}
    assert providers["batches"][0] == {
        "provider_id": "ogx-tenancy",
        "provider_type": "inline::ogx-tenancy",
        "module": "ogx_tenancy.adapter",
        "config": {"max_concurrent_batches": 3, "max_concurrent_requests_per_batch": 10},
    }


def test_without_services_ogx_runs_the_operators_file(tmp_path):
    path = write_config(tmp_path, {})
    loaded = load_run_config(path, manager=with_memory_storage())
    with wiring.generated_run_config(loaded) as generated:
        assert generated == path.resolve()
