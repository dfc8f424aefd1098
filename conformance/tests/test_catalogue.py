"""The suite's own promises: stable, documented ids; core guarantees in every family; no escape hatch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ogx_tenancy_conformance import CAPABILITIES, CORE_GUARANTEES
from ogx_tenancy_conformance.catalogue import catalogue
from ogx_tenancy_conformance.guarantees import Clause
from ogx_tenancy_conformance.marks import conformance_test

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_ids_are_unique_and_well_formed():
    ids = [spec.id for spec in catalogue()]
    assert len(ids) == len(set(ids))
    for test_id in ids:
        assert re.fullmatch(r"(identity|storage|headers|deployment)\.[a-z0-9-]+", test_id), test_id


def test_every_test_id_and_capability_is_documented():
    undocumented = [spec.id for spec in catalogue() if f"`{spec.id}`" not in README]
    assert not undocumented, f"README.md does not list {undocumented}"
    missing = [name for name in CAPABILITIES if f"`{name}`" not in README]
    assert not missing, f"README.md does not document capabilities {missing}"


def test_every_test_names_its_clause_and_summary():
    for spec in catalogue():
        assert spec.summary, f"{spec.id} has no docstring"
        assert isinstance(spec.clause, Clause)


@pytest.mark.parametrize("family", ["identity", "headers", "storage", "deployment"])
def test_each_family_checks_core_guarantees(family):
    core = {spec.clause.key for spec in catalogue() if spec.family == family and spec.core}
    assert core, f"{family} checks no core guarantee"
    assert core <= {g.key for g in CORE_GUARANTEES}


def test_core_guarantees_are_each_checked_somewhere():
    checked = {spec.clause.key for spec in catalogue() if spec.core}
    assert checked == {g.key for g in CORE_GUARANTEES}


def test_no_core_guarantee_can_require_a_capability():
    with pytest.raises(ValueError, match="cannot require a capability"):
        conformance_test("storage.escape-hatch", CORE_GUARANTEES[0], requires="transactions")


def test_unknown_capability_fails_at_declaration():
    with pytest.raises(KeyError, match="unknown capability"):
        conformance_test("storage.typo", Clause("x", "y"), requires="transactoins")
