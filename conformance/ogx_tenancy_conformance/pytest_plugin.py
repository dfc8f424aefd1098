"""The suite's pytest plugin (entry point ``pytest11``), active wherever the distribution is installed.

It acts only on the suite's own tests (those declared with ``conformance_test``):

* prints the suite version and what is tested in the report header;
* applies the xfail file (``--conformance-xfails``), warning about ids that match no test;
* gives each test its stable id as JUnit properties (``--junitxml``);
* prints a table of results by family and capability, and writes ``--conformance-json``;
* runs the suite's async tests on its own loop (see ``runner``), whatever the user's asyncio mode.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any

import pytest

from .discovery import DiscoveryError, load_target
from .marks import MARKER, spec_of, test_id_of
from .report import Report, Result, RunInfo
from .runner import close_loop_runner
from .xfails import XfailFileError, read_xfail_file

REPORT_KEY = pytest.StashKey[Report]()


class ConformanceWarning(UserWarning):
    """A problem with how the suite was run (an xfail entry matching nothing, ...)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ogx-tenancy-conformance", "ogx-tenancy conformance suite")
    group.addoption(
        "--conformance-xfails",
        metavar="FILE",
        help="file of suite test ids expected to fail, one per line ('#' starts a reason)",
    )
    group.addoption("--conformance-json", metavar="FILE", help="write the conformance results as JSON to FILE")
    group.addoption(
        "--conformance-plugin",
        metavar="NAME",
        help="plugin (ogx_tenancy entry-point name) the no-code plugin suite tests",
    )
    group.addoption("--conformance-base-url", metavar="URL", help="base URL of the OGX deployment under test")
    group.addoption("--conformance-identities", metavar="FILE", help="identities file for the deployment suite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(spec): a test of the ogx-tenancy conformance suite (stable id)")
    info = RunInfo()
    plugin = config.getoption("conformance_plugin", None)
    base_url = config.getoption("conformance_base_url", None)
    if plugin:
        info.target = f"plugin {plugin}"
        try:
            target = load_target(plugin)
            info.target_version = f"({target.distribution} {target.version})"
        except DiscoveryError:
            info.target_version = "(not loadable)"
    elif base_url:
        info.target = f"deployment {base_url}"
    config.stash[REPORT_KEY] = Report(info)


def pytest_unconfigure(config: pytest.Config) -> None:
    close_loop_runner()


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[REPORT_KEY].info.header()


def _families_of_target(config: pytest.Config) -> set[str] | None:
    name = config.getoption("conformance_plugin", None)
    if not name:
        return None
    try:
        return set(load_target(name).families())
    except DiscoveryError:
        return None  # every family's fixtures then fail with the reason


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    report = config.stash[REPORT_KEY]
    families = _families_of_target(config)
    selected, deselected = [], []
    for item in items:
        spec = spec_of(item)
        if spec is None:
            selected.append(item)
            continue
        bound_family = getattr(getattr(item, "cls", None), "conformance_family", None)
        if families is not None and bound_family is not None and bound_family not in families:
            deselected.append(item)
            continue
        test_id = test_id_of(item) or spec.id
        item.user_properties += [
            ("conformance_id", test_id),
            ("family", spec.family),
            ("capability", spec.group),
            ("clause", spec.clause.key),
        ]
        selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
    _apply_xfails(config, report, items)


def _apply_xfails(config: pytest.Config, report: Report, items: list[pytest.Item]) -> None:
    path = config.getoption("conformance_xfails", None)
    if not path:
        return
    try:
        entries = read_xfail_file(path)
    except XfailFileError as e:
        raise pytest.UsageError(str(e)) from None
    used = set()
    for item in items:
        spec = spec_of(item)
        test_id = test_id_of(item)
        if spec is None or test_id is None:
            continue
        for entry in entries:
            if not entry.matches(test_id):
                continue
            used.add(entry)
            if spec.core:
                message = (
                    f"xfail file line {entry.line}: {entry.test_id!r} is a core guarantee test "
                    f"({spec.clause.key}); guarantees cannot be expected to fail, the entry is ignored"
                )
                if message not in report.warnings:
                    report.warnings.append(message)
                    warnings.warn(ConformanceWarning(message), stacklevel=1)
                continue
            item.add_marker(pytest.mark.xfail(reason=entry.reason, strict=True))
            break
    for entry in entries:
        if entry not in used:
            message = f"xfail file line {entry.line}: {entry.test_id!r} matches no collected test"
            report.warnings.append(message)
            warnings.warn(ConformanceWarning(message), stacklevel=1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    spec = spec_of(item)
    if spec is None:
        return report
    result = Result(
        id=test_id_of(item) or spec.id,
        nodeid=item.nodeid,
        family=spec.family,
        group=spec.group,
        clause=spec.clause.key,
        core=spec.core,
        duration_s=round(report.duration, 3),
    )
    xfail = hasattr(report, "wasxfail")
    # pytest reports a strict xfail that passed as a plain failure whose text starts like this
    strict_xpass = report.failed and str(report.longrepr).startswith("[XPASS(strict)]")
    if report.when == "call":
        if report.passed:
            result.outcome = "passed"
        elif report.skipped:
            result.outcome = "xfailed" if xfail else "skipped"
        else:
            result.outcome = "xpassed" if xfail or strict_xpass else "failed"
    elif report.failed:
        result.outcome = "error"
    elif report.skipped:
        result.outcome = "xfailed" if xfail else "skipped"
    else:
        return report  # a passing setup or teardown says nothing yet
    result.message = _message(report, call)
    item.config.stash[REPORT_KEY].record(result)
    return report


def _message(report: pytest.TestReport, call: pytest.CallInfo[Any]) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if hasattr(report, "wasxfail") and report.skipped:
        return str(report.wasxfail)
    if report.failed and str(report.longrepr).startswith("[XPASS(strict)]"):
        return f"expected to fail but passed: {report.longrepr}"
    if call.excinfo is not None and report.failed:
        text = str(call.excinfo.value) or call.excinfo.typename
        return text[:4000]
    if report.failed and hasattr(report, "wasxfail"):
        return f"expected to fail ({report.wasxfail}) but passed"
    return ""


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = config.stash[REPORT_KEY]
    json_path = config.getoption("conformance_json", None)
    if json_path:
        report.write_json(json_path)
    if not report.results:
        return
    tr = terminalreporter
    tr.section("ogx-tenancy-conformance")
    tr.write_line(report.info.header())
    tr.write_line("")
    for line in report.render_table().splitlines():
        tr.write_line(line)
    failures = [r for r in report.results.values() if r.outcome in ("failed", "error", "xpassed")]
    if failures:
        tr.write_line("")
        tr.write_line("failed:")
        for r in sorted(failures, key=lambda r: r.id):
            tr.write_line(f"  {r.id}: {r.message.splitlines()[0] if r.message else r.outcome}")
    skips = report.skip_reasons()
    if skips:
        tr.write_line("")
        tr.write_line("skipped (capability not declared or not served):")
        for line in skips:
            tr.write_line(f"  {line}")
    for warning in report.warnings:
        tr.write_line(f"warning: {warning}")
    if json_path:
        tr.write_line(f"JSON report: {json_path}")
