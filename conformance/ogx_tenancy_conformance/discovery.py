"""Finding a plugin and its conformance profile by entry-point name, and calling its hooks.

Plugins are registered explicitly with the core's ``PluginManager`` (never by loading every
installed plugin), so other installed plugins cannot change a result.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from ogx_tenancy.hookspecs import PROJECT_NAME
from ogx_tenancy.manager import PluginManager
from ogx_tenancy.settings import ConfigError, validate_plugin_settings

from .harness import ConformanceProfile

PROFILE_GROUP = "ogx_tenancy_conformance"

# hook -> family
FAMILY_OF_HOOK = {
    "ogx_tenancy_identity": "identity",
    "ogx_tenancy_storage_backends": "storage",
    "ogx_tenancy_extra_request_headers": "headers",
}


class DiscoveryError(Exception):
    """The plugin or its profile cannot be found or loaded; the message says what to do."""


@dataclass
class Target:
    """The plugin under test: its name, the loaded object, its distribution and its profile."""

    name: str
    plugin: object
    distribution: str | None
    version: str | None
    profile: ConformanceProfile | None

    def families(self) -> list[str]:
        """The hook families the plugin implements (as the core's plugin manager sees them)."""
        manager = PluginManager()
        manager.register(self.plugin, self.name)
        info = {i.name: i for i in manager.plugins()}[self.name]
        if info.error:
            raise DiscoveryError(f"plugin {self.name!r} does not load into the core plugin manager: {info.error}")
        return [FAMILY_OF_HOOK[h] for h in FAMILY_OF_HOOK if h in info.hooks]


def load_target(name: str) -> Target:
    """Load the ``ogx_tenancy`` entry point ``name`` and its ``ogx_tenancy_conformance`` profile."""
    found = [ep for ep in entry_points(group=PROJECT_NAME) if ep.name == name]
    if not found:
        installed = sorted({ep.name for ep in entry_points(group=PROJECT_NAME)})
        raise DiscoveryError(
            f"no plugin named {name!r} in entry-point group {PROJECT_NAME!r} "
            f"(installed: {', '.join(installed) or 'none'}); pip install the plugin's distribution first"
        )
    ep = found[0]
    try:
        plugin = ep.load()
    except Exception as e:
        raise DiscoveryError(f"plugin {name!r} ({ep.value}) failed to import: {type(e).__name__}: {e}") from e
    return Target(
        name=name,
        plugin=plugin,
        distribution=ep.dist.name if ep.dist else None,
        version=ep.dist.version if ep.dist else None,
        profile=load_profile(name),
    )


def load_profile(name: str) -> ConformanceProfile | None:
    """The plugin's profile from the ``ogx_tenancy_conformance`` group, or None when it declares none."""
    found = [ep for ep in entry_points(group=PROFILE_GROUP) if ep.name == name]
    if not found:
        return None
    try:
        obj = found[0].load()
    except Exception as e:
        raise DiscoveryError(
            f"conformance profile of {name!r} ({found[0].value}) failed to import: {type(e).__name__}: {e}"
        ) from e
    profile = obj() if isinstance(obj, type) else obj
    if not isinstance(profile, ConformanceProfile):
        raise DiscoveryError(
            f"entry point {found[0].value} in group {PROFILE_GROUP!r} must be a ConformanceProfile "
            f"subclass, got {type(profile).__name__}"
        )
    return profile


def register(plugin: object, name: str, manager: PluginManager | None = None) -> PluginManager:
    """Register ``plugin`` with a (new) core ``PluginManager``; raise when the core refuses it."""
    manager = manager or PluginManager()
    manager.register(plugin, name)
    errors = {i.name: i.error for i in manager.plugins() if i.error}
    if name in errors:
        raise DiscoveryError(f"plugin {name!r} does not load into the core plugin manager: {errors[name]}")
    return manager


def validated_settings(manager: PluginManager, name: str, block: Mapping[str, Any] | None) -> BaseModel | None:
    """The plugin's settings instance, validated by its own model exactly as the host does."""
    models = manager.settings_models()
    try:
        return validate_plugin_settings(name, models.get(name), dict(block) if block is not None else None)
    except ConfigError as e:
        raise DiscoveryError(f"the harness's settings for {name!r} do not validate: {e}") from e


def call_hook(plugin: object, hook: str, **kwargs: Any) -> Any:
    """Call one plugin's hook directly, passing only the arguments it names (as pluggy does)."""
    function = getattr(plugin, hook)
    names = [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return function(**{n: kwargs[n] for n in names if n in kwargs})
