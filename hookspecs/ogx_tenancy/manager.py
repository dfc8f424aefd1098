"""Finding, loading and calling plugins.

Plugins come from the ``ogx_tenancy`` entry-point group (or are registered explicitly, as tests
do). Each is loaded in its own error boundary: one that fails to import, has a bad hook signature or
a misspelt hook name is recorded with its error and left out, and the rest load.

Environment variables:

* ``OGX_TENANCY_PLUGINS`` — comma-separated allow-list of plugin names; only these load.
* ``OGX_TENANCY_DISABLED_PLUGINS`` — comma-separated deny-list.
* ``OGX_TENANCY_TRACE_HOOKS`` — set to 1 to log every hook call (plugin, hook, outcome, duration).
"""

from __future__ import annotations

import inspect
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy
import structlog
from pydantic import BaseModel

from . import hookspecs
from .merge import merge_headers, merge_identities
from .store import BackendRegistration
from .types import Identity, IdentityRejected, IncomingRequest, OutgoingRequest

log = structlog.get_logger("ogx_tenancy.plugins")

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
ENV_ALLOW = "OGX_TENANCY_PLUGINS"
ENV_DENY = "OGX_TENANCY_DISABLED_PLUGINS"
ENV_TRACE = "OGX_TENANCY_TRACE_HOOKS"

HOOK_NAMES = tuple(
    name for name in dir(hookspecs) if name.startswith("ogx_tenancy_") and callable(getattr(hookspecs, name))
)


@dataclass
class PluginInfo:
    """What ``ogx-tenancy plugins`` reports about one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    disabled: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
        }
        if self.error:
            data["error"] = self.error
        if self.disabled:
            data["disabled"] = self.disabled
        return data


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _normalize(dist_name: str) -> str:
    return re.sub(r"[-_.]+", "-", dist_name).lower()


@dataclass(frozen=True, slots=True)
class _Impl:
    plugin: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]


class PluginManager:
    """The ogx_tenancy plugins of this process, with a typed method per hook."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._impl_cache: dict[str, tuple[_Impl, ...]] = {}
        self._trace = os.environ.get(ENV_TRACE, "").lower() in ("1", "true", "yes", "on")

    # -- loading --------------------------------------------------------------------------------

    def load_entry_points(self, eps: Iterable[EntryPoint] | None = None) -> None:
        """Load every plugin of the entry-point group, each in its own error boundary."""
        allow, deny = _names_from_env(ENV_ALLOW), _names_from_env(ENV_DENY)
        seen_dists: dict[str, str] = {}
        for ep in eps if eps is not None else entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            key = f"{_normalize(dist) if dist else '?'}:{ep.name}"
            if key in seen_dists:
                continue  # the same distribution seen twice on sys.path
            seen_dists[key] = ep.name
            if ep.name in self._infos:
                other = self._infos[ep.name].distribution
                log.error("plugin name taken", plugin=ep.name, distribution=dist, taken_by=other)
                self._infos[f"{ep.name} ({dist})"] = PluginInfo(
                    ep.name, dist, version, error=f"plugin name {ep.name!r} is already used by distribution {other!r}"
                )
                continue
            info = PluginInfo(ep.name, dist, version)
            self._infos[ep.name] = info
            if allow is not None and ep.name not in allow:
                info.disabled = f"not listed in {ENV_ALLOW}"
                continue
            if deny is not None and ep.name in deny:
                info.disabled = f"listed in {ENV_DENY}"
                continue
            try:
                module = ep.load()
            except BaseException as e:
                if isinstance(e, KeyboardInterrupt):
                    raise
                info.error = f"failed to import {ep.value}: {type(e).__name__}: {e}"
                log.error("plugin failed to load", plugin=ep.name, distribution=dist, error=info.error)
                continue
            self._register(module, info)
        self._check_pending()

    def register(
        self, plugin: object, name: str, *, distribution: str | None = None, version: str | None = None
    ) -> None:
        """Register a plugin object explicitly (tests, embedding). Same checks as entry points."""
        info = PluginInfo(name, distribution, version)
        self._infos[name] = info
        self._register(plugin, info)
        self._check_pending()

    def _register(self, plugin: object, info: PluginInfo) -> None:
        problem = _hook_problem(plugin)
        if problem:
            info.error = problem
            log.error("plugin has an invalid hook", plugin=info.name, error=problem)
            return
        try:
            self._pm.register(plugin, name=info.name)
        except Exception as e:  # noqa: BLE001 - pluggy.PluginValidationError and whatever a plugin raises
            info.error = f"invalid hook implementation: {e}"
            log.error("plugin failed to register", plugin=info.name, error=info.error)
            return
        self._impl_cache.clear()

    def _check_pending(self) -> None:
        # pluggy raises on the first hookimpl without a spec; drop that plugin and look again
        while True:
            try:
                self._pm.check_pending()
                return
            except pluggy.PluginValidationError as e:
                name = self._pm.get_name(e.plugin)
                if name is None:
                    raise
                self._pm.unregister(e.plugin)
                self._impl_cache.clear()
                self._infos[name].error = f"unknown hook: {e}"
                log.error("plugin defines an unknown hook", plugin=name, error=str(e))

    # -- reporting ------------------------------------------------------------------------------

    def plugins(self, *, include_disabled: bool = False) -> list[PluginInfo]:
        """Every plugin seen, loaded or failed; disabled ones only when asked."""
        result = []
        for info in sorted(self._infos.values(), key=lambda i: i.name):
            if info.disabled and not include_disabled:
                continue
            plugin = self._pm.get_plugin(info.name) if not info.error and not info.disabled else None
            info.hooks = sorted(c.name for c in self._pm.get_hookcallers(plugin) or []) if plugin else []
            result.append(info)
        return result

    def active_plugins(self) -> list[str]:
        """Names of the plugins that loaded and are registered."""
        return sorted(name for name, _ in self._pm.list_name_plugin())

    # -- calling --------------------------------------------------------------------------------

    def _impls(self, hook: str) -> tuple[_Impl, ...]:
        impls = self._impl_cache.get(hook)
        if impls is None:
            caller = getattr(self._pm.hook, hook)
            impls = tuple(_Impl(i.plugin_name, i.function, tuple(i.argnames)) for i in caller.get_hookimpls())
            self._impl_cache[hook] = impls
        return impls

    def _call(self, impl: _Impl, hook: str, kwargs: Mapping[str, Any]) -> Any:
        args = [kwargs[name] for name in impl.argnames]
        if not self._trace:
            return impl.function(*args)
        start = time.perf_counter()
        try:
            result = impl.function(*args)
        except BaseException as e:
            log.info(
                "hook call",
                hook=hook,
                plugin=impl.plugin,
                outcome=f"raised {type(e).__name__}",
                micros=round((time.perf_counter() - start) * 1e6, 1),
            )
            raise
        log.info(
            "hook call",
            hook=hook,
            plugin=impl.plugin,
            outcome=_summary(result),
            micros=round((time.perf_counter() - start) * 1e6, 1),
        )
        return result

    def settings_models(self) -> dict[str, type[BaseModel] | None]:
        """Each active plugin's settings model (None when it declares none)."""
        models: dict[str, type[BaseModel] | None] = dict.fromkeys(self.active_plugins())
        for impl in self._impls("ogx_tenancy_settings_model"):
            model = self._call(impl, "ogx_tenancy_settings_model", {})
            if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise TypeError(
                    f"plugin {impl.plugin!r}: ogx_tenancy_settings_model must return a pydantic model class"
                )
            models[impl.plugin] = model
        return models

    def identify(self, request: IncomingRequest, settings: Mapping[str, Any]) -> Identity | None:
        """Call every identity hook with its plugin's settings and merge the results.

        :raises IdentityRejected: when a plugin refused the request, failed, or the results conflict.
        """
        contributions: list[tuple[str, Identity]] = []
        for impl in self._impls("ogx_tenancy_identity"):
            try:
                result = self._call(
                    impl, "ogx_tenancy_identity", {"request": request, "settings": settings.get(impl.plugin)}
                )
            except IdentityRejected:
                raise
            except Exception:
                # fail closed: a broken identity plugin must never let a request through
                log.exception("identity hook failed", plugin=impl.plugin)
                raise IdentityRejected(401, "identity could not be established") from None
            if result is None:
                continue
            if not isinstance(result, Identity):
                log.error("identity hook returned a non-Identity", plugin=impl.plugin, type=type(result).__name__)
                raise IdentityRejected(401, "identity could not be established")
            contributions.append((impl.plugin, result))
        return merge_identities(contributions)

    def extra_request_headers(
        self, request: OutgoingRequest, identity: Identity | None, settings: Mapping[str, Any]
    ) -> dict[str, str]:
        """Call every outgoing-header hook with its plugin's settings and merge the results.

        :raises HeaderConflict: when two plugins set one header to different values.
        """
        contributions = []
        for impl in self._impls("ogx_tenancy_extra_request_headers"):
            result = self._call(
                impl,
                "ogx_tenancy_extra_request_headers",
                {"request": request, "identity": identity, "settings": settings.get(impl.plugin)},
            )
            if result:
                contributions.append((impl.plugin, result))
        return merge_headers(contributions)

    def storage_backends(self) -> dict[str, BackendRegistration]:
        """Every registered storage backend by name.

        :raises ValueError: when two plugins register the same backend name.
        """
        backends: dict[str, BackendRegistration] = {}
        for impl in self._impls("ogx_tenancy_storage_backends"):

            def register(name: str, config_model: type[BaseModel], factory: Any, _plugin: str = impl.plugin) -> None:
                if name in backends:
                    raise ValueError(
                        f"storage backend {name!r} is registered by both {backends[name].plugin!r} and {_plugin!r}"
                    )
                backends[name] = BackendRegistration(name, config_model, factory, _plugin)

            self._call(impl, "ogx_tenancy_storage_backends", {"register": register})
        return backends


def _hook_problem(plugin: object) -> str | None:
    """What pluggy would let pass silently: a misspelt hook name, or a hook argument with a default.

    ``check_pending`` only sees functions marked with ``hookimpl``, so an unmarked misspelt
    ``ogx_tenancy_*`` function would do nothing; and pluggy never passes an argument that has a
    default value, so such a hook would never see its settings or request.
    """
    own = [
        name
        for name in dir(plugin)
        if name.startswith("ogx_tenancy_")
        and callable(getattr(plugin, name, None))
        and (
            not isinstance(plugin, ModuleType) or getattr(getattr(plugin, name), "__module__", None) == plugin.__name__
        )
    ]
    misspelt = [name for name in own if name not in HOOK_NAMES]
    if misspelt:
        return f"unknown hook(s) {', '.join(misspelt)}; known hooks: {', '.join(HOOK_NAMES)}"
    for name in own:
        try:
            parameters = inspect.signature(getattr(plugin, name)).parameters.values()
        except (TypeError, ValueError):
            continue
        defaulted = [p.name for p in parameters if p.default is not inspect.Parameter.empty]
        if defaulted:
            return f"hook {name} gives argument(s) {', '.join(defaulted)} a default value; pluggy would never pass them"
    return None


def _summary(result: Any) -> str:
    # never log attribute values or header values: they may be private
    if result is None:
        return "None"
    if isinstance(result, Identity):
        principal = "set" if result.principal else "none"
        tenant = "set" if result.tenant_id else "none"
        return f"Identity(principal={principal}, categories={sorted(result.attributes)}, tenant={tenant})"
    if isinstance(result, dict):
        return f"headers {sorted(result)}"
    return type(result).__name__
