"""Helpers for the suite's own tests: run the CLI as a user would and read its JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]


@dataclass
class SuiteRun:
    """One `ogx-tenancy-conformance ...` run: exit code, output and the JSON and JUnit reports."""

    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None
    junit: str | None

    def results(self) -> dict[str, dict[str, Any]]:
        assert self.report is not None, self.stdout + self.stderr
        return {r["id"]: r for r in self.report["results"]}

    def failed(self) -> dict[str, str]:
        return {i: r["message"] for i, r in self.results().items() if r["outcome"] in ("failed", "error", "xpassed")}


@pytest.fixture
def run_cli(tmp_path: Path):
    def run(*args: str, timeout: float = 600) -> SuiteRun:
        json_path, junit_path = tmp_path / "report.json", tmp_path / "report.xml"
        extra = (
            ["--json", str(json_path), "--junit", str(junit_path)]
            if args and args[0] in ("plugin", "deployment")
            else []
        )
        completed = subprocess.run(
            [sys.executable, "-m", "ogx_tenancy_conformance.cli", *args, *extra],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
        )
        report = json.loads(json_path.read_text()) if json_path.exists() else None
        junit = junit_path.read_text() if junit_path.exists() else None
        return SuiteRun(completed.returncode, completed.stdout, completed.stderr, report, junit)

    return run
