"""The OGX 1.5 internals of the request path: app factory, config parsing, scope keys, user, routes.

Each function names the OGX mechanism it uses. The services' mechanisms (external APIs, admin,
``module:`` providers) live in their own adapter modules. ``tests/test_ogx_compat.py`` and
``tests/test_ogx_compat_services.py`` fail loudly when an installed OGX no longer provides them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ogx_tenancy.types import Identity

# ASGI scope keys that OGX's ProviderDataMiddleware turns into its authenticated User
# (ogx.core.request_headers.user_from_scope); OGX's own AuthenticationMiddleware writes them.
SCOPE_PRINCIPAL = "principal"
SCOPE_ATTRIBUTES = "user_attributes"
SCOPE_TENANT = "tenant_id"
SCOPE_CLIENT_ID = "authenticated_client_id"
IDENTITY_SCOPE_KEYS = (SCOPE_PRINCIPAL, SCOPE_ATTRIBUTES, SCOPE_TENANT, SCOPE_CLIENT_ID)


def ogx_version() -> str:
    from importlib.metadata import version

    return version("ogx")


def setup_ogx_logging() -> None:
    """OGX's logging set-up (structlog through stdlib, rich console, ``OGX_LOGGING`` levels), so our
    lines look like OGX's from the first one on. OGX's app factory calls it again; that is harmless."""
    from ogx.log import setup_logging

    setup_logging()


def create_ogx_app() -> Any:
    """OGX's own app factory (reads the run config from ``OGX_CONFIG``)."""
    from ogx.core.server.server import create_app

    return create_app()


def parse_run_config(contents: Mapping[str, Any]) -> Any:
    """OGX's parsing of a run config (env substitution, upgrades, validation) -> StackConfig."""
    from ogx.core.configure import parse_and_maybe_upgrade_config

    return parse_and_maybe_upgrade_config(dict(contents))


def replace_env_vars(value: Any) -> Any:
    """OGX's ``${env.NAME:=default}`` substitution, for our own ``tenancy:`` section."""
    from ogx.core.stack import replace_env_vars as ogx_replace_env_vars

    return ogx_replace_env_vars(value)


def current_ogx_identity() -> Identity | None:
    """The user OGX holds for this context (e.g. restored in a background job), as an Identity."""
    from ogx.core.request_headers import get_authenticated_user

    user = get_authenticated_user()
    if user is None or not user.principal:
        return None
    return Identity(principal=user.principal, attributes=user.attributes or {}, tenant_id=user.tenant_id or None)


def public_route_checker(app: Any) -> Callable[[str, str], bool]:
    """A function telling whether OGX serves ``(method, path)`` without authentication
    (routes marked public, such as /v1/health). Built lazily: routes exist only after start-up."""
    from ogx.core.server.routes import build_route_impls_from_routes, find_matching_route

    route_impls: dict[str, Any] | None = None

    def is_public(method: str, path: str) -> bool:
        nonlocal route_impls
        if route_impls is None:
            route_impls = build_route_impls_from_routes(app.router.routes)
        try:
            _, _, _, webmethod = find_matching_route(method, path, route_impls)
        except ValueError:
            return False
        return webmethod.require_authentication is False

    return is_public
