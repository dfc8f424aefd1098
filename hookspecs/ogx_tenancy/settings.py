"""The ``tenancy:`` section of the OGX run config, and the errors that stop start-up.

```yaml
tenancy:
  plugins:                 # one block per plugin, validated by that plugin's own model
    maas: {trusted_proxy_cidrs: [10.0.0.0/8]}
  storage:                 # the backend our stores use (registered by a storage plugin)
    backend: sqlite
    config: {path: /var/lib/ogx/tenancy.db}
  anonymous:               # optional: the identity of requests no plugin identified
    principal: anonymous
  services:                # optional: OGX APIs served from the store (see services/config.py)
    prompts: {}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .services.config import ServicesSettings


class ConfigError(Exception):
    """A start-up error in the ``tenancy:`` section: the message names where and what was expected."""


class StorageSettings(BaseModel):
    """Which registered storage backend serves our stores, and its config."""

    model_config = ConfigDict(extra="forbid")
    backend: str = Field(description="name of a registered storage backend, e.g. sqlite or postgres")
    config: dict[str, Any] = Field(default_factory=dict, description="the backend's own settings")


class AnonymousIdentity(BaseModel):
    """The identity given to requests no plugin identified. Unset: such requests get 401."""

    model_config = ConfigDict(extra="forbid")
    principal: str = Field(min_length=1)
    attributes: dict[str, list[str]] = Field(default_factory=dict)
    tenant_id: str | None = None


class TenancySettings(BaseModel):
    """The host's part of the ``tenancy:`` section."""

    model_config = ConfigDict(extra="forbid")
    plugins: dict[str, dict[str, Any] | None] = Field(default_factory=dict, description="settings per plugin name")
    storage: StorageSettings | None = None
    anonymous: AnonymousIdentity | None = None
    services: ServicesSettings = Field(
        default_factory=ServicesSettings, description="prompts, connectors, batches served from the store"
    )


def describe_validation_error(where: str, error: ValidationError, model: type[BaseModel]) -> str:
    """One line per problem: ``<where>.<key>: <what was expected> (got <type>)``; never the value
    itself, which may be a secret."""
    lines = []
    for err in error.errors():
        loc = ".".join(str(part) for part in err["loc"])
        path = f"{where}.{loc}" if loc else where
        if err["type"] == "extra_forbidden" and len(err["loc"]) > 1:
            # a nested model's key: ``model`` does not know that model's keys, so list none
            lines.append(f"{path}: unknown key")
        elif err["type"] == "extra_forbidden":
            known = ", ".join(sorted(model.model_fields)) or "none"
            lines.append(f"{path}: unknown key (expected one of: {known})")
        elif err["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        else:
            got = type(err.get("input")).__name__
            lines.append(f"{path}: {err['msg']} (got {got})")
    return "\n".join(lines)


def parse_tenancy_section(section: Mapping[str, Any] | None) -> TenancySettings:
    if section is None:
        return TenancySettings()
    if not isinstance(section, Mapping):
        raise ConfigError(f"tenancy: expected a mapping, got {type(section).__name__}")
    try:
        return TenancySettings.model_validate(dict(section))
    except ValidationError as e:
        raise ConfigError(describe_validation_error("tenancy", e, TenancySettings)) from None


def validate_plugin_settings(
    plugin: str, model: type[BaseModel] | None, block: Mapping[str, Any] | None
) -> BaseModel | None:
    """Validate one plugin's block with its own model; an absent block validates ``{}``."""
    where = f"tenancy.plugins.{plugin}"
    if model is None:
        if block:
            raise ConfigError(f"{where}: plugin {plugin!r} takes no settings, but keys were given: {sorted(block)}")
        return None
    if block is not None and not isinstance(block, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(block).__name__}")
    try:
        return model.model_validate(dict(block or {}))
    except ValidationError as e:
        raise ConfigError(f"plugin {plugin!r}: " + describe_validation_error(where, e, model)) from None
