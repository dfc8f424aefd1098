"""Reading an OGX run config with a ``tenancy:`` section into a validated ``Tenancy``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ogx_tenancy.host import Tenancy
from ogx_tenancy.manager import PluginManager
from ogx_tenancy.settings import ConfigError

from . import ogx_bridge
from .wiring import check_services


@dataclass
class LoadedConfig:
    path: Path
    raw: dict[str, Any]
    ogx: Any  # ogx.core.datatypes.StackConfig
    tenancy: Tenancy


def load_run_config(path: str | Path, *, manager: PluginManager | None = None) -> LoadedConfig:
    """Parse the run config with OGX's own parser and validate its ``tenancy:`` section.

    :raises ConfigError: with a message naming the key (and plugin) at fault.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read run config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"run config {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"run config {path}: expected a mapping at the top level")
    try:
        ogx_config = ogx_bridge.parse_run_config({k: v for k, v in raw.items() if k != "tenancy"})
    except ValidationError as e:
        raise ConfigError(f"run config {path} is not a valid OGX config:\n{e}") from None
    except Exception as e:  # noqa: BLE001 - OGX raises ValueError, EnvVarError, … for a bad config
        raise ConfigError(f"run config {path} is not a valid OGX config: {e}") from None

    auth = ogx_config.server.auth
    if auth is not None and auth.provider_config is not None:
        raise ConfigError(
            "server.auth.provider_config: must be unset under ogx-tenancy (found type "
            f"{auth.provider_config.type.value!r}); identity comes from the tenancy identity plugins. "
            "Keep server.auth.access_policy and route_policy: they still apply."
        )
    section = raw.get("tenancy")
    if section is not None:
        section = ogx_bridge.replace_env_vars(section)
    tenancy = Tenancy.from_config(
        section,
        access_policy=auth.access_policy if auth is not None else None,
        manager=manager,
        tenancy_mode=ogx_config.server.tenancy.mode.value,
        default_tenant_id=ogx_config.server.tenancy.default_tenant_id,
    )
    check_services(raw, ogx_config, tenancy)
    return LoadedConfig(path=path, raw=raw, ogx=ogx_config, tenancy=tenancy)
