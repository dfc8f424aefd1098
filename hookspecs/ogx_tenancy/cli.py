"""``ogx-tenancy``: run OGX with the tenancy plugins, check a config, list plugins."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import structlog

from . import __version__
from .manager import ENV_ALLOW, ENV_DENY, ENV_TRACE, HOOK_NAMES, PluginManager
from .settings import ConfigError

EPILOG = f"""\
environment:
  {ENV_ALLOW}=a,b          load only these plugins
  {ENV_DENY}=a,b  never load these plugins
  {ENV_TRACE}=1        log every hook call (plugin, hook, outcome, duration)
  OGX_TENANCY_LOG_LEVEL=DEBUG      level of ogx-tenancy's own log lines (default INFO)
"""


def _log_to_stderr() -> None:
    # stdout carries command output (JSON); diagnostics go to stderr
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def _cmd_plugins(args: argparse.Namespace) -> int:
    if args.hook and args.hook not in HOOK_NAMES:
        print(f"ogx-tenancy: unknown hook {args.hook!r}; known hooks: {', '.join(HOOK_NAMES)}", file=sys.stderr)
        return 2
    manager = PluginManager()
    manager.load_entry_points()
    infos = manager.plugins(include_disabled=args.all)
    if args.hook:
        infos = [info for info in infos if args.hook in info.hooks]
    print(json.dumps([info.as_json() for info in infos], indent=2))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .adapter.runconfig import load_run_config

    loaded = load_run_config(args.config)
    tenancy = loaded.tenancy
    summary = {
        "config": str(loaded.path),
        "plugins": tenancy.manager.active_plugins(),
        "failed_plugins": {i.name: i.error for i in tenancy.manager.plugins() if i.error},
        "policy": "default" if tenancy.policy.is_default else f"{len(tenancy.policy.rules)} rules",
        "tenancy_mode": tenancy.tenancy_mode,
        "storage": tenancy.settings.storage.backend if tenancy.settings.storage else None,
        "services": tenancy.settings.services.enabled(),
        "anonymous_access": tenancy.anonymous is not None,
    }
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_hooks(args: argparse.Namespace) -> int:
    from .hookref import render

    print(render(), end="")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    from pathlib import Path

    from .adapter.migrate import migrate
    from .adapter.runconfig import load_run_config

    # the progress bar is the feedback; per-row logs (system contexts) would drown it
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    tenancy = load_run_config(args.config).tenancy
    if tenancy.settings.storage is None:
        raise ConfigError("tenancy.storage: migrate copies into the tenancy store; configure one (e.g. sqlite)")

    async def main() -> int:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=False) as bar:

            def progress(kind: str, total: int):
                task = bar.add_task(kind, total=total)
                return lambda: bar.advance(task)

            try:
                report = await migrate(
                    tenancy,
                    Path(args.source or args.config),
                    dry_run=args.dry_run,
                    assign_tenant=args.assign_tenant,
                    progress=progress,
                )
            finally:
                await tenancy.close()
        print(json.dumps(report.as_json(), indent=2) if args.json else report.as_text())
        return 0 if report.ok else 1

    return asyncio.run(main())


def _cmd_run(args: argparse.Namespace) -> int:
    from .adapter.app import run

    run(args.config, host_address=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ogx-tenancy",
        description="Multi-tenancy for OGX: identity from the gateway, row-level isolation, fair scheduling.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ogx-tenancy {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="start an OGX server with the tenancy plugins",
        description=(
            "Start OGX's own server from an OGX run config, with every request identified by the "
            "tenancy identity plugins. The config's `tenancy:` section holds each plugin's settings "
            "(tenancy.plugins.<name>), the storage backend (tenancy.storage) and an optional anonymous "
            "identity (tenancy.anonymous). A bad key stops start-up with a message naming it."
        ),
    )
    run.add_argument("config", help="path to the OGX run config (YAML) with a tenancy: section")
    run.add_argument("--host", help="address to listen on (default: server.host, else 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    run.set_defaults(func=_cmd_run)

    check = commands.add_parser(
        "check",
        help="validate a run config without starting the server",
        description="Validate the run config and its tenancy: section exactly as `run` would, print a JSON summary.",
    )
    check.add_argument("config", help="path to the OGX run config (YAML)")
    check.set_defaults(func=_cmd_check)

    plugins = commands.add_parser(
        "plugins",
        help="list installed plugins as JSON",
        description=(
            "List the plugins of the ogx_tenancy entry-point group as JSON: name, distribution, "
            "version, the hooks each implements, and the error of any that failed to load."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plugins.add_argument("--all", action="store_true", help=f"include plugins disabled by {ENV_ALLOW}/{ENV_DENY}")
    plugins.add_argument(
        "--hook", metavar="NAME", help=f"only plugins implementing this hook ({', '.join(HOOK_NAMES)})"
    )
    plugins.set_defaults(func=_cmd_plugins)

    migrate = commands.add_parser(
        "migrate",
        help="copy an OGX deployment's prompts, connectors and batches into the tenancy store",
        description=(
            "Copy OGX's prompts, connectors and batches (OGX 1.5 SQL tables, and pre-1.5 KVStore entries "
            "prompts:v1:*, connectors:v1:*, batch:*) into the stores of CONFIG's tenancy.storage, keeping ids, "
            "versions, defaults, owners, attributes and tenants. Safe to run again: what is already there is "
            "left alone, so an interrupted run resumes and a finished one changes nothing. Ends by reading "
            "everything back and comparing counts and checksums; prints what it could not map. Exit status: "
            "0 all copied and verified, 1 something not copied or not verified, 2 configuration error."
        ),
    )
    migrate.add_argument("config", help="run config whose tenancy.storage receives the data")
    migrate.add_argument(
        "--from",
        dest="source",
        metavar="RUN_CONFIG",
        help="run config of the OGX deployment to copy from; its storage: section says where OGX keeps its data "
        "(default: CONFIG)",
    )
    migrate.add_argument("--dry-run", action="store_true", help="read and map everything, write nothing, print counts")
    migrate.add_argument(
        "--assign-tenant",
        metavar="TENANT",
        help="tenant for rows stored without one (default: they become global rows, seen from every tenant as "
        "the access policy allows)",
    )
    migrate.add_argument("--json", action="store_true", help="print the report as JSON")
    migrate.set_defaults(func=_cmd_migrate)

    hooks = commands.add_parser(
        "hooks",
        help="print the hook reference (Markdown) for plugin authors",
        description="Print the reference of every hook, generated from the hook specifications.",
    )
    hooks.set_defaults(func=_cmd_hooks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command != "run":
        _log_to_stderr()
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"ogx-tenancy: configuration error:\n{e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("ogx", "ogx_api", "uvicorn"):
            print(
                f"ogx-tenancy: {e.name} is not installed; install the server extra: pip install 'ogx-tenancy[server]'",
                file=sys.stderr,
            )
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
