"""The running host: loaded plugins, their validated settings, the policy, and the store backend.

One ``Tenancy`` is installed per process (by the OGX adapter, or by a test). Provider and service
code reach it through the module functions:

* ``outgoing_headers(OutgoingRequest(...))`` — the merged headers of every plugin for the current
  user, in one call;
* ``open_store(CollectionSpec(...))`` — an access-controlled store on the configured backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from .context import current_identity
from .manager import PluginManager
from .policy import Policy, PolicyError
from .settings import (
    ConfigError,
    TenancySettings,
    describe_validation_error,
    parse_tenancy_section,
    validate_plugin_settings,
)
from .store import AccessControlledStore, CollectionSpec, StorageBackend
from .types import Identity, IdentityRejected, IncomingRequest, OutgoingRequest

log = structlog.get_logger("ogx_tenancy.host")


class Tenancy:
    """Everything the host needs at run time, validated once at start-up."""

    def __init__(
        self,
        manager: PluginManager,
        settings: TenancySettings,
        plugin_settings: Mapping[str, BaseModel | None],
        policy: Policy,
        *,
        tenancy_mode: str = "disabled",
        default_tenant_id: str | None = None,
    ):
        if tenancy_mode not in ("disabled", "single", "multi"):
            raise ConfigError(f"server.tenancy.mode: expected disabled, single or multi, got {tenancy_mode!r}")
        if tenancy_mode == "single" and not default_tenant_id:
            raise ConfigError("server.tenancy.default_tenant_id: required when server.tenancy.mode is single")
        self.tenancy_mode = tenancy_mode
        self.default_tenant_id = default_tenant_id
        self.manager = manager
        self.settings = settings
        self.plugin_settings = dict(plugin_settings)
        self.policy = policy
        self.anonymous = (
            Identity(
                principal=settings.anonymous.principal,
                attributes=settings.anonymous.attributes,
                tenant_id=settings.anonymous.tenant_id,
            )
            if settings.anonymous
            else None
        )
        self._backend: StorageBackend | None = None
        self._backend_lock = asyncio.Lock()

    @classmethod
    def from_config(
        cls,
        section: Mapping[str, Any] | None,
        *,
        access_policy: Any = None,
        manager: PluginManager | None = None,
        tenancy_mode: str = "disabled",
        default_tenant_id: str | None = None,
    ) -> Tenancy:
        """Validate the ``tenancy:`` section against the loaded plugins.

        :param section: the ``tenancy:`` mapping of the run config (None = empty).
        :param access_policy: OGX's ``server.auth.access_policy`` list (None or empty = default).
        :param manager: the plugins to use; by default, every plugin of the entry-point group.
        :param tenancy_mode: OGX's ``server.tenancy.mode`` (disabled, single or multi).
        :param default_tenant_id: OGX's ``server.tenancy.default_tenant_id`` (single mode).
        :raises ConfigError: naming the plugin, key and what was expected.
        """
        settings = parse_tenancy_section(section)
        if manager is None:
            manager = PluginManager()
            manager.load_entry_points()
        models = manager.settings_models()
        failed = {info.name: info.error for info in manager.plugins() if info.error}
        plugin_settings: dict[str, BaseModel | None] = {}
        for name, block in settings.plugins.items():
            if name in failed:
                log.error("settings given for a plugin that failed to load; it stays inactive", plugin=name)
                continue
            if name not in models:
                known = ", ".join(sorted(models)) or "none installed"
                raise ConfigError(f"tenancy.plugins.{name}: no active plugin named {name!r} (active plugins: {known})")
            plugin_settings[name] = validate_plugin_settings(name, models[name], block)
        for name, model in models.items():
            if name not in plugin_settings:
                plugin_settings[name] = validate_plugin_settings(name, model, None)
        if settings.storage is not None:
            cls._check_storage(settings, manager)
        try:
            policy = Policy.parse(access_policy)
        except PolicyError as e:
            raise ConfigError(f"server.auth.{e}") from None
        return cls(
            manager, settings, plugin_settings, policy, tenancy_mode=tenancy_mode, default_tenant_id=default_tenant_id
        )

    @staticmethod
    def _check_storage(settings: TenancySettings, manager: PluginManager) -> None:
        assert settings.storage is not None
        backends = manager.storage_backends()
        registration = backends.get(settings.storage.backend)
        if registration is None:
            known = ", ".join(sorted(backends)) or "none registered: install a storage plugin such as ogx-tenancy-sql"
            raise ConfigError(
                f"tenancy.storage.backend: unknown backend {settings.storage.backend!r} (expected one of: {known})"
            )
        try:
            registration.config_model.model_validate(settings.storage.config)
        except ValidationError as e:
            raise ConfigError(
                f"plugin {registration.plugin!r}: "
                + describe_validation_error("tenancy.storage.config", e, registration.config_model)
            ) from None

    # -- identity -------------------------------------------------------------------------------

    def identify(self, request: IncomingRequest) -> Identity | None:
        """The merged identity of an incoming request, or the anonymous identity, or None.

        OGX's ``server.tenancy.mode`` is honoured: ``single`` puts every identity in the default
        tenant, ``multi`` refuses an identity without a tenant.

        :raises IdentityRejected: when a plugin refused it, the plugins' answers conflict, or a
            tenant is required and missing.
        """
        identity = self.manager.identify(request, self.plugin_settings)
        if identity is None:
            identity = self.anonymous
        if identity is None or self.tenancy_mode == "disabled":
            return identity
        if self.tenancy_mode == "single":
            if identity.tenant_id == self.default_tenant_id:
                return identity
            return Identity(identity.principal, identity.attributes, self.default_tenant_id)
        if identity.tenant_id is None:
            raise IdentityRejected(401, "a tenant is required (server.tenancy.mode is multi) and none was established")
        return identity

    # -- outgoing headers -----------------------------------------------------------------------

    def outgoing_headers(self, request: OutgoingRequest, identity: Identity | None) -> dict[str, str]:
        """Merged headers of every plugin for a call made for ``identity`` (None = no user)."""
        return self.manager.extra_request_headers(request, identity, self.plugin_settings)

    # -- storage --------------------------------------------------------------------------------

    async def backend(self) -> StorageBackend:
        """The configured storage backend, opened on first use."""
        async with self._backend_lock:
            if self._backend is None:
                if self.settings.storage is None:
                    raise ConfigError("tenancy.storage: no storage backend configured (e.g. backend: sqlite)")
                registration = self.manager.storage_backends()[self.settings.storage.backend]
                config = registration.config_model.model_validate(self.settings.storage.config)
                self._backend = await registration.factory(config)
            return self._backend

    async def open_store(self, collection: CollectionSpec) -> AccessControlledStore:
        """An access-controlled store for ``collection`` under this host's policy."""
        return await (await self.backend()).open_store(collection, self.policy)

    async def close(self) -> None:
        if self._backend is not None:
            await self._backend.close()
            self._backend = None


_installed: Tenancy | None = None


def install(tenancy: Tenancy | None) -> None:
    """Make ``tenancy`` the process's host (None uninstalls)."""
    global _installed
    _installed = tenancy


def current() -> Tenancy:
    """The installed host. Raises RuntimeError outside a server started by ``ogx-tenancy run``."""
    if _installed is None:
        raise RuntimeError("no ogx-tenancy host is installed; start the server with `ogx-tenancy run CONFIG`")
    return _installed


def outgoing_headers(request: OutgoingRequest, identity: Identity | None = None) -> dict[str, str]:
    """The merged outgoing headers of every plugin for the current user (or ``identity``)."""
    return current().outgoing_headers(request, identity if identity is not None else current_identity())


async def open_store(collection: CollectionSpec) -> AccessControlledStore:
    """An access-controlled store on the installed host's backend."""
    return await current().open_store(collection)
