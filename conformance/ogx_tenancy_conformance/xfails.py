"""The xfail file: test ids the user expects to fail, one per line.

::

    # comments and blank lines are ignored; text after '#' on a line is the reason
    storage.transactions            # our backend has no transactions yet
    headers.user-headers-present[sqlite]

An id without ``[...]`` matches every parametrization of that test. An entry that matches no
collected test is reported with a warning (a typo, or a test renamed in a newer suite). Entries
naming a core-guarantee test are refused: those have no escape hatch. An expected failure that
passes is an error (strict xfail), so a stale entry is noticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class XfailFileError(Exception):
    """The xfail file cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class XfailEntry:
    test_id: str
    reason: str
    line: int

    def matches(self, test_id: str) -> bool:
        if "[" in self.test_id:
            return test_id == self.test_id
        return test_id == self.test_id or test_id.startswith(self.test_id + "[")


def read_xfail_file(path: str | Path) -> list[XfailEntry]:
    """Parse an xfail file (see module docstring)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise XfailFileError(f"cannot read xfail file {path}: {e.strerror}") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        content, _, comment = raw.partition("#")
        content = content.strip()
        if not content:
            continue
        if " " in content or "." not in content:
            raise XfailFileError(
                f"{path}:{number}: expected one test id such as 'storage.transactions', got {content!r}"
            )
        entries.append(XfailEntry(content, comment.strip() or f"listed in {path.name}", number))
    return entries
