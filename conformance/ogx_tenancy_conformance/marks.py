"""``conformance_test``: how every test of the suite declares its stable id, clause and needs."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from .capabilities import capability
from .guarantees import Clause
from .runner import run_sync

MARKER = "ogx_tenancy_conformance"

# every id in use, so a duplicate fails at import time instead of merging two tests' results
_REGISTERED: dict[str, str] = {}
_SPECS: dict[str, TestSpec] = {}


@dataclass(frozen=True, slots=True)
class TestSpec:
    """What the suite knows about one test.

    :param id: stable id, ``<family>.<name>``; parametrized tests add ``[param-id]``.
    :param clause: the promise the test checks (named in its failure message).
    :param requires: capabilities that must be declared, else the test is skipped with the reason.
    :param summary: one line for ``ogx-tenancy-conformance list`` and the README.
    """

    id: str
    clause: Clause
    requires: tuple[str, ...]
    summary: str

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def core(self) -> bool:
        return self.clause.core

    @property
    def group(self) -> str:
        """The row of the results table: ``core guarantee``, the capability, or ``required``."""
        if self.core:
            return "core guarantee"
        return ", ".join(self.requires) if self.requires else "required"


def conformance_test(
    test_id: str, clause: Clause, *, requires: tuple[str, ...] | str = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a suite test: its stable id, the clause it checks and the capabilities it needs.

    ``async def`` tests are run on the suite's own loop (``runner.run_sync``). A core guarantee
    cannot require a capability: that would be an escape hatch.
    """
    needs = (requires,) if isinstance(requires, str) else tuple(requires)
    for name in needs:
        capability(name)  # unknown names fail at import
    if clause.core and needs:
        raise ValueError(f"{test_id}: a core guarantee test cannot require a capability")
    family = test_id.split(".", 1)[0]
    if "." not in test_id or not family:
        raise ValueError(f"test id {test_id!r} must be '<family>.<name>'")

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        where = function.__qualname__
        if _REGISTERED.setdefault(test_id, where) != where:
            raise ValueError(f"test id {test_id!r} used by both {_REGISTERED[test_id]} and {where}")
        summary = " ".join((inspect.getdoc(function) or "").split("\n\n", 1)[0].split())
        spec = TestSpec(test_id, clause, needs, summary)
        _SPECS[test_id] = spec
        target = run_sync(function) if inspect.iscoroutinefunction(function) else function
        target = getattr(pytest.mark, MARKER)(spec)(target)
        return target

    return decorate


def registered_specs() -> list[TestSpec]:
    """Every declared test, in declaration order."""
    return list(_SPECS.values())


def spec_of(item: pytest.Item) -> TestSpec | None:
    """The ``TestSpec`` of a collected item, or None for tests that are not the suite's."""
    marker = item.get_closest_marker(MARKER)
    if marker is None or not marker.args or not isinstance(marker.args[0], TestSpec):
        return None
    return marker.args[0]


def test_id_of(item: pytest.Item) -> str | None:
    """The stable id of a collected item, with its parameters: ``storage.x[sqlite-default]``."""
    spec = spec_of(item)
    if spec is None:
        return None
    callspec = getattr(item, "callspec", None)
    return f"{spec.id}[{callspec.id}]" if callspec is not None and callspec.id else spec.id
