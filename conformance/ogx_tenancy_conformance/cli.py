"""``ogx-tenancy-conformance``: run the conformance suite against a plugin or a running deployment."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from .meta import SUITE_VERSION, distribution_version

PACKAGE_DIR = Path(__file__).resolve().parent
PYTEST_INI = PACKAGE_DIR / "cli_pytest.ini"

EXIT_HELP = """\
exit status:
  0  everything run passed (skips are fine: they name the capability not declared)
  1  a test failed: the report names the test id and the broken guarantee
  2  usage or configuration error (unknown plugin, unreadable file, ...)
"""


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--xfails",
        metavar="FILE",
        help="test ids expected to fail, one per line ('#' starts a reason); "
        "core guarantees cannot be listed; an id matching nothing is warned about",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--junit", metavar="FILE", help="write the results as JUnit XML")
    parser.add_argument("-k", metavar="EXPR", help="only run tests matching this pytest -k expression")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per test")
    parser.add_argument(
        "pytest_args",
        nargs="*",
        metavar="PYTEST_ARG",
        help="further pytest arguments, after '--' (e.g. -- -x --tb=long)",
    )


def _pytest_args(args: argparse.Namespace, module: Path, extra: list[str]) -> list[str]:
    argv = [str(module), "-c", str(PYTEST_INI), "--rootdir", str(PACKAGE_DIR), *extra]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        argv += ["-p", "ogx_tenancy_conformance.pytest_plugin"]
    if args.xfails:
        argv += ["--conformance-xfails", args.xfails]
    if args.json:
        argv += ["--conformance-json", args.json]
    if args.junit:
        argv += ["--junitxml", args.junit, "-o", "junit_family=xunit2"]
    if args.k:
        argv += ["-k", args.k]
    argv += ["-v"] if args.verbose else ["-q"]
    argv += ["-rfE", "--tb=short", *args.pytest_args]
    return argv


def _run_pytest(argv: list[str]) -> int:
    code = int(pytest.main(argv))
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("ogx-tenancy-conformance: no test was selected", file=sys.stderr)
        return 2
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.INTERRUPTED):
        return 2
    return 0 if code == pytest.ExitCode.OK else 1


def _cmd_plugin(args: argparse.Namespace) -> int:
    from .discovery import DiscoveryError, load_target

    try:
        target = load_target(args.name)
        families = target.families()
    except DiscoveryError as e:
        print(f"ogx-tenancy-conformance: {e}", file=sys.stderr)
        return 2
    if not families:
        print(
            f"ogx-tenancy-conformance: plugin {args.name!r} implements no hook the suite tests "
            "(identity, storage backends, outgoing headers)",
            file=sys.stderr,
        )
        return 2
    return _run_pytest(
        _pytest_args(args, PACKAGE_DIR / "suites" / "plugin_tests.py", ["--conformance-plugin", args.name])
    )


def _cmd_deployment(args: argparse.Namespace) -> int:
    from .deployment.config import IdentitiesFileError, load_identities

    try:
        load_identities(args.identities)
    except IdentitiesFileError as e:
        print(f"ogx-tenancy-conformance: {e}", file=sys.stderr)
        return 2
    return _run_pytest(
        _pytest_args(
            args,
            PACKAGE_DIR / "deployment" / "deployment_tests.py",
            ["--conformance-base-url", args.base_url, "--conformance-identities", args.identities],
        )
    )


def _cmd_list(args: argparse.Namespace) -> int:
    from .catalogue import catalogue

    for spec in catalogue():
        if args.family and spec.family != args.family:
            continue
        print(f"{spec.id:45} {spec.group:22} [{spec.clause.key}] {spec.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ogx-tenancy-conformance",
        description=(
            "Check an ogx-tenancy plugin, or a running OGX deployment, against the ogx-tenancy contract. "
            f"Suite version {SUITE_VERSION}."
        ),
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"ogx-tenancy-conformance {distribution_version()} (suite {SUITE_VERSION})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    plugin = commands.add_parser(
        "plugin",
        help="run every family an installed plugin implements",
        description=(
            "Load the plugin NAME from the ogx_tenancy entry-point group and its ConformanceProfile from the "
            "ogx_tenancy_conformance group, then run the suite of every hook family it implements "
            "(identity, storage, headers). Capabilities the plugin does not declare are skipped with "
            "the reason; core guarantees always run."
        ),
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plugin.add_argument("name", help="the plugin's entry-point name (see `ogx-tenancy plugins`)")
    _report_options(plugin)
    plugin.set_defaults(func=_cmd_plugin)

    deployment = commands.add_parser(
        "deployment",
        help="check a running OGX over HTTP with several identities",
        description=(
            "Black-box checks of a running OGX (with ogx-tenancy or without): isolation of prompts, files, "
            "batches, vector stores, responses, conversations and connectors between the identities of "
            "the identities file; identity headers from an untrusted client refused; optionally, fairness "
            "headers at a recording upstream. APIs the deployment does not serve are skipped with the "
            "reason. Everything the suite creates is deleted at the end."
        ),
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    deployment.add_argument("--base-url", required=True, help="the deployment's base URL, e.g. http://127.0.0.1:8321")
    deployment.add_argument(
        "--identities",
        required=True,
        metavar="FILE",
        help="YAML/JSON file of identities (see the README: identities, teams, untrusted, upstream)",
    )
    _report_options(deployment)
    deployment.set_defaults(func=_cmd_deployment)

    listing = commands.add_parser(
        "list",
        help="list every test id with its capability and clause",
        description="Print every test id, the capability it needs (or 'core guarantee' / "
        "'required'), the clause it checks and a one-line summary.",
    )
    listing.add_argument("--family", choices=["identity", "storage", "headers", "deployment"])
    listing.set_defaults(func=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
