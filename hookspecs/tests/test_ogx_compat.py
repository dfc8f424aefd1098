"""Pins every OGX internal the adapter relies on (adapter/ogx_bridge.py) to the declared OGX range.

If one of these fails after an OGX upgrade, the adapter no longer attaches to OGX the way it
thinks it does: fix ogx_bridge.py (and the declared range) before anything else.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from core_helpers import minimal_ogx_config
from packaging.requirements import Requirement

from ogx_tenancy.adapter import ogx_bridge
from ogx_tenancy.types import Identity

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def declared_ogx_requirement() -> Requirement:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["server"]
    return next(Requirement(r) for r in extras if Requirement(r).name == "ogx")


def test_installed_ogx_is_in_the_declared_range():
    requirement = declared_ogx_requirement()
    assert requirement.specifier.contains(version("ogx")), f"ogx {version('ogx')} outside {requirement}"


def test_scope_keys_become_ogx_user():
    from ogx.core.request_headers import user_from_scope

    scope = {
        ogx_bridge.SCOPE_PRINCIPAL: "alice",
        ogx_bridge.SCOPE_ATTRIBUTES: {"teams": ["a"]},
        ogx_bridge.SCOPE_TENANT: "t1",
    }
    user = user_from_scope(scope)
    assert (user.principal, user.attributes, user.tenant_id) == ("alice", {"teams": ["a"]}, "t1")


def test_ogx_user_in_request_context_reads_back_as_identity():
    from ogx.core.datatypes import User
    from ogx.core.request_headers import request_provider_data_context

    assert ogx_bridge.current_ogx_identity() is None
    with request_provider_data_context({}, User("bob", {"roles": ["r"]}, tenant_id="t2")):
        assert ogx_bridge.current_ogx_identity() == Identity("bob", {"roles": ["r"]}, "t2")


def test_provider_data_header_cannot_inject_the_user():
    from ogx.core.request_headers import parse_request_provider_data

    parsed = parse_request_provider_data({"X-OGX-Provider-Data": '{"__authenticated_user": "root"}'})
    assert parsed == {}


def test_public_route_checker_uses_ogx_route_metadata():
    from fastapi import FastAPI
    from ogx.core.server.routes import PUBLIC_ROUTE_KEY

    app = FastAPI()
    app.get("/v1/health", openapi_extra={PUBLIC_ROUTE_KEY: True})(lambda: {})
    app.get("/v1/files")(lambda: {})
    is_public = ogx_bridge.public_route_checker(app)
    assert is_public("GET", "/v1/health") and not is_public("GET", "/v1/files") and not is_public("GET", "/nope")


def test_run_config_parser_and_env_substitution(monkeypatch, tmp_path):
    monkeypatch.setenv("TENANCY_TEST_SECRET", "s3")
    assert ogx_bridge.replace_env_vars({"key": "${env.TENANCY_TEST_SECRET}"}) == {"key": "s3"}
    config = ogx_bridge.parse_run_config({**minimal_ogx_config(tmp_path), "server": {"tenancy": {"mode": "multi"}}})
    assert config.server.tenancy.mode.value == "multi" and config.server.auth is None


def test_ogx_app_factory_exists():
    from ogx.core.server import server

    assert callable(server.create_app) and ogx_bridge.create_ogx_app.__doc__
