"""Collecting results per test id, and rendering them: terminal table, JSON file.

JUnit XML comes from pytest's own ``--junitxml``; each test case carries the properties
``conformance_id``, ``family``, ``capability`` and ``clause``.
"""

from __future__ import annotations

import json
import platform
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .meta import SUITE_VERSION, distribution_version

OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")


@dataclass
class Result:
    """The outcome of one suite test."""

    id: str
    nodeid: str
    family: str
    group: str
    clause: str
    core: bool
    outcome: str = "passed"
    message: str = ""
    duration_s: float = 0.0


@dataclass
class RunInfo:
    """What was tested: the report header."""

    target: str = ""  # unknown when the suites run as a user's own subclasses
    target_version: str | None = None
    suite_version: str = SUITE_VERSION
    conformance_version: str = field(default_factory=distribution_version)
    core_version: str = field(default_factory=lambda: distribution_version("ogx-tenancy"))
    python: str = field(default_factory=platform.python_version)

    def header(self) -> str:
        header = (
            f"ogx-tenancy-conformance {self.conformance_version} (suite {self.suite_version}); "
            f"core ogx-tenancy {self.core_version}"
        )
        if not self.target:
            return header
        target = f"{self.target} {self.target_version}" if self.target_version else self.target
        return f"{header}; target: {target}"


@dataclass
class Report:
    info: RunInfo = field(default_factory=RunInfo)
    results: dict[str, Result] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def record(self, result: Result) -> None:
        previous = self.results.get(result.nodeid)
        # a failing setup/teardown outranks a passing call
        if previous is None or previous.outcome in ("passed", "skipped"):
            self.results[result.nodeid] = result

    def counts(self) -> Counter[str]:
        return Counter(r.outcome for r in self.results.values())

    def table_rows(self) -> list[tuple[str, str, Counter[str]]]:
        groups: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for r in self.results.values():
            groups[(r.family, r.group)][r.outcome] += 1
        order = {"core guarantee": 0, "required": 1}
        return [
            (fam, grp, groups[(fam, grp)])
            for fam, grp in sorted(groups, key=lambda k: (k[0], order.get(k[1], 2), k[1]))
        ]

    def render_table(self) -> str:
        """The terminal table: one row per family and capability, counts per outcome."""
        columns = ("pass", "fail", "skip", "xfail")
        rows = []
        for family, group, counts in self.table_rows():
            failed = counts["failed"] + counts["error"] + counts["xpassed"]
            rows.append(
                (
                    family,
                    group,
                    str(counts["passed"]),
                    str(failed),
                    str(counts["skipped"]),
                    str(counts["xfailed"]),
                    "FAIL" if failed else ("pass" if counts["passed"] else "skip"),
                )
            )
        header = ("family", "capability", *columns, "verdict")
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        line = "  ".join("-" * w for w in widths)
        out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
        out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        return "\n".join(out)

    def skip_reasons(self) -> list[str]:
        return sorted({f"{r.id}: {r.message}" for r in self.results.values() if r.outcome == "skipped"})

    def as_json(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "header": self.info.header(),
            "info": asdict(self.info),
            "summary": {o: counts.get(o, 0) for o in OUTCOMES},
            "conforms": not (counts["failed"] or counts["error"] or counts["xpassed"]),
            "table": [
                {"family": f, "capability": g, **{o: c.get(o, 0) for o in OUTCOMES}} for f, g, c in self.table_rows()
            ],
            "results": [asdict(r) for r in sorted(self.results.values(), key=lambda r: (r.id, r.nodeid))],
            "warnings": self.warnings,
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.as_json(), indent=2) + "\n")
