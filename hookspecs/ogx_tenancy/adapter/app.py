"""The app factory uvicorn runs, and ``ogx-tenancy run``.

The factory builds (or reuses) the process's ``Tenancy`` and wraps OGX's own app in the identity
middleware, so each uvicorn worker process sets itself up from the same run config.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import structlog

from ogx_tenancy import context, host

from . import ogx_bridge
from .middleware import IdentityMiddleware
from .runconfig import load_run_config
from .wiring import generated_run_config

log = structlog.get_logger("ogx_tenancy.adapter")

# The run config path, for uvicorn worker processes that import the factory afresh.
ENV_RUN_CONFIG = "OGX_TENANCY_RUN_CONFIG"
# Level of our own log lines (ogx_tenancy.*, plugins included); OGX's root logger stays at WARNING.
ENV_LOG_LEVEL = "OGX_TENANCY_LOG_LEVEL"


def create_app() -> Any:
    """Uvicorn factory: OGX's app behind ``IdentityMiddleware``."""
    try:
        tenancy = host.current()
    except RuntimeError:
        path = os.environ.get(ENV_RUN_CONFIG)
        if not path:
            raise RuntimeError(f"{ENV_RUN_CONFIG} is not set; start the server with `ogx-tenancy run CONFIG`") from None
        tenancy = load_run_config(path).tenancy
        host.install(tenancy)
    context.set_fallback_identity_source(ogx_bridge.current_ogx_identity)
    ogx_app = ogx_bridge.create_ogx_app()
    _log_like_ogx()
    # OGX warns that authentication is not configured: its own auth is unset on purpose
    log.info("requests are identified by the tenancy identity plugins", plugins=tenancy.manager.active_plugins())
    return IdentityMiddleware(ogx_app, tenancy, ogx_bridge.public_route_checker(ogx_app))


def run(config_path: str | Path, *, host_address: str | None = None, port: int | None = None) -> None:
    """Validate the run config, then serve OGX with the tenancy plugins until interrupted.

    :raises ConfigError: before anything starts, when the config is wrong.
    """
    import uvicorn

    _log_like_ogx()
    loaded = load_run_config(config_path)
    host.install(loaded.tenancy)
    server = loaded.ogx.server
    os.environ[ENV_RUN_CONFIG] = str(Path(config_path).resolve())

    options: dict[str, Any] = {
        "factory": True,
        "host": host_address or server.host or "127.0.0.1",
        "port": port or server.port,
        "lifespan": "on",
        "workers": server.workers,
        # Identity plugins must see the real socket peer: uvicorn's default would rewrite the client
        # address from X-Forwarded-For for any local peer, letting a local client claim the gateway's.
        # X-Forwarded-For stays in the headers, for plugins that count trusted hops.
        "proxy_headers": False,
    }
    if server.tls_certfile and server.tls_keyfile:
        options.update(ssl_certfile=server.tls_certfile, ssl_keyfile=server.tls_keyfile)
    else:
        log.warning("serving plain HTTP: put TLS in front (the gateway) or set server.tls_certfile/tls_keyfile")
    plugins = loaded.tenancy.manager.active_plugins()
    log.info("starting OGX with tenancy plugins", plugins=plugins, host=options["host"], port=options["port"])
    # uvicorn re-raises SIGTERM once it has shut down; as SystemExit it lets the `with` below clean up
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # OGX runs the operator's config, or one derived from it for tenancy.services (wiring.py)
    with generated_run_config(loaded) as ogx_config_path:
        os.environ["OGX_CONFIG"] = str(ogx_config_path)
        uvicorn.run("ogx_tenancy.adapter.app:create_app", **options)


def _log_like_ogx() -> None:
    ogx_bridge.setup_ogx_logging()
    # OGX routes structlog through stdlib logging with the root logger at WARNING
    logging.getLogger("ogx_tenancy").setLevel(os.environ.get(ENV_LOG_LEVEL, "INFO").upper())


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)
