"""From the operator's run config to the run config OGX actually runs, for ``tenancy.services``.

The operator writes an ordinary OGX run config plus ``tenancy.services`` (``services/config.py``).
``generated_run_config`` derives what OGX needs, in a private temporary directory that lives as long
as the server:

* ``external_apis/`` — ``prompts.yaml``, ``connectors.yaml`` and ``admin.yaml`` for the enabled
  services (plus copies of the operator's own ``external_apis_dir`` entries), and
  ``external_apis_dir`` pointing there;
* ``providers.prompts`` / ``providers.connectors`` / ``providers.admin`` entries of type
  ``inline::ogx-tenancy`` for those external APIs, and ``providers.batches`` loaded with
  ``module: ogx_tenancy.adapter``;
* the top-level ``connectors:`` moved into our connectors provider (which registers them in the
  system context) and OGX's own list emptied;
* ``prompts`` and ``batches`` added to ``apis:`` when it is an explicit list, so their routes exist.

``check_services`` is the start-up validation (also run by ``ogx-tenancy check``): every problem is a
``ConfigError`` naming the key and what to do. With no service enabled OGX runs the operator's file
unchanged.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
import yaml

from ogx_tenancy.host import Tenancy
from ogx_tenancy.services.config import ServicesSettings
from ogx_tenancy.services.connectors import shadowed_ids
from ogx_tenancy.settings import ConfigError

from . import admin_api, batches_provider, connectors_api, prompts_api

log = structlog.get_logger("ogx_tenancy.adapter.wiring")

PROVIDER_ID = "ogx-tenancy"
# external API name -> (module, protocol class name), per service that needs it
EXTERNAL_APIS: dict[str, dict[str, tuple[str, str]]] = {
    "prompts": {"prompts": (prompts_api.__name__, "Prompts")},
    "connectors": {"connectors": (connectors_api.__name__, "Connectors"), "admin": (admin_api.__name__, "Admin")},
    "batches": {},
}
BATCHES_MODULE = "ogx_tenancy.adapter"  # OGX imports <module>.provider (adapter/provider.py)
RUNTIME_PREFIX = "ogx-tenancy-run-"  # + "<pid>-": the derived config of one server process


def _live_providers(raw: Mapping[str, Any], api: str) -> list[Mapping[str, Any]]:
    entries = (raw.get("providers") or {}).get(api) or []
    return [p for p in entries if isinstance(p, Mapping) and p.get("provider_id") not in (None, "__disabled__")]


def _operator_external_apis(ogx_config: Any) -> dict[str, Path]:
    directory = ogx_config.external_apis_dir
    if directory is None:
        return {}
    found = {}
    for path in sorted(Path(directory).expanduser().resolve().glob("*.yaml")):
        spec = yaml.safe_load(path.read_text()) or {}
        found[str(spec.get("name", path.stem))] = path
    return found


def check_services(raw: Mapping[str, Any], ogx_config: Any, tenancy: Tenancy) -> None:
    """Refuse a run config whose ``tenancy.services`` cannot work, naming the key and the fix.

    :param raw: the run config as written (YAML mapping).
    :param ogx_config: OGX's parsed ``StackConfig`` of it.
    """
    services = tenancy.settings.services
    enabled = services.enabled()
    if not enabled:
        return
    if tenancy.settings.storage is None:
        raise ConfigError(
            f"tenancy.services: {', '.join(enabled)} need a store; set tenancy.storage "
            "(e.g. backend: sqlite, config: {path: ...})"
        )
    external = _operator_external_apis(ogx_config)
    for service in enabled:
        for api in EXTERNAL_APIS[service]:
            if _live_providers(raw, api):
                raise ConfigError(
                    f"providers.{api}: remove it; tenancy.services.{service} provides the {api} API "
                    f"(or set tenancy.services.{service}.enabled: false)"
                )
            if api in external:
                raise ConfigError(
                    f"external_apis_dir: {external[api]} defines the {api!r} API, which tenancy.services.{service} "
                    "provides; remove one of them"
                )
    if "batches" in enabled and _live_providers(raw, "batches"):
        types = ", ".join(sorted({str(p.get("provider_type")) for p in _live_providers(raw, "batches")}))
        raise ConfigError(
            f"providers.batches: remove {types}; tenancy.services.batches serves /v1/batches "
            "(copy existing batches with `ogx-tenancy migrate`), or set tenancy.services.batches.enabled: false"
        )
    if "connectors" in enabled:
        assert services.connectors is not None
        for tenant, ids in shadowed_ids(ogx_config.connectors, services.connectors.tenants).items():
            raise ConfigError(
                f"tenancy.services.connectors.tenants.{tenant}: connector id(s) {ids} are already global "
                "connectors (top-level connectors:); give the tenant's connector another id"
            )


def derive_ogx_config(raw: Mapping[str, Any], services: ServicesSettings, runtime_dir: Path, ogx_config: Any) -> dict:
    """The run config OGX runs: ``raw`` with our providers and external APIs (see module doc).

    Writes the external API specs under ``runtime_dir``; the returned mapping is to be written to
    ``runtime_dir / "run.yaml"``.
    """
    enabled = services.enabled()
    derived = copy.deepcopy({k: v for k, v in raw.items() if k != "tenancy"})
    providers = derived.setdefault("providers", {})
    apis = derived.get("apis")

    def serve(api: str) -> None:
        if isinstance(apis, list) and api not in apis:
            apis.append(api)

    external_dir = runtime_dir / "external_apis"
    external_dir.mkdir()
    for name, path in _operator_external_apis(ogx_config).items():
        shutil.copy(path, external_dir / f"{name}.yaml")
    for service in enabled:
        for api, (module, protocol) in EXTERNAL_APIS[service].items():
            spec = {"name": api, "module": module, "protocol": protocol, "pip_packages": []}
            (external_dir / f"{api}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    derived["external_apis_dir"] = str(external_dir)

    if "prompts" in enabled:
        providers["prompts"] = [{"provider_id": PROVIDER_ID, "provider_type": prompts_api.PROVIDER_TYPE, "config": {}}]
        serve("prompts")
    if "connectors" in enabled:
        assert services.connectors is not None
        config = {
            "connectors": list(raw.get("connectors") or []),
            "tenants": {t: [c.model_dump() for c in cs] for t, cs in services.connectors.tenants.items()},
        }
        derived["connectors"] = []  # registered by our provider, in the system context
        providers["connectors"] = [
            {"provider_id": PROVIDER_ID, "provider_type": connectors_api.PROVIDER_TYPE, "config": config}
        ]
        providers["admin"] = [
            {
                "provider_id": PROVIDER_ID,
                "provider_type": admin_api.PROVIDER_TYPE,
                "config": {"run_config": str(runtime_dir / "run.yaml")},
            }
        ]
    if "batches" in enabled:
        assert services.batches is not None
        providers["batches"] = [
            {
                "provider_id": PROVIDER_ID,
                "provider_type": batches_provider.PROVIDER_TYPE,
                "module": BATCHES_MODULE,
                "config": services.batches.model_dump(exclude={"enabled"}),
            }
        ]
        serve("batches")
    return derived


def _remove_stale_runtime_dirs() -> None:
    """Remove the derived configs of servers that were killed (SIGKILL leaves them behind)."""
    for path in Path(tempfile.gettempdir()).glob(f"{RUNTIME_PREFIX}*-*"):
        pid = path.name[len(RUNTIME_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or not path.is_dir() or path.stat().st_uid != os.getuid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


@contextmanager
def generated_run_config(loaded: Any) -> Iterator[Path]:
    """The path of the run config OGX should run, valid inside the ``with`` block.

    :param loaded: ``runconfig.LoadedConfig`` of the operator's run config.
    """
    services = loaded.tenancy.settings.services
    if not services.enabled():
        yield loaded.path.resolve()
        return
    _remove_stale_runtime_dirs()
    # mode 0700 (it may hold secrets); named by pid so a killed server's directory can be recognised
    runtime_dir = Path(tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{os.getpid()}-"))
    try:
        derived = derive_ogx_config(loaded.raw, services, runtime_dir, loaded.ogx)
        path = runtime_dir / "run.yaml"
        path.write_text(yaml.safe_dump(derived, sort_keys=False))
        log.info("OGX runs a derived run config", path=str(path), services=services.enabled())
        yield path
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)
