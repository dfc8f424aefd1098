"""The subclass route: a plugin author wires the suites into their own tests in a few lines, and the
suite's async tests run whatever the author's pytest-asyncio mode is (or without pytest-asyncio)."""

from __future__ import annotations

import pytest

AUTHOR_TESTS = """
from ogx_tenancy_conformance import HeaderSuite, IdentitySuite, StorageSuite
from ogx_tenancy_sample_third_party.conformance import AcmeHeaderHarness, AcmeIdentityHarness, AcmeStorageHarness


class TestAcmeIdentity(IdentitySuite):
    plugin_name = "sample_third_party"
    harness = AcmeIdentityHarness


class TestAcmeStorage(StorageSuite):
    plugin_name = "sample_third_party"
    harness = AcmeStorageHarness


class TestAcmeHeaders(HeaderSuite):
    plugin_name = "sample_third_party"
    harness = AcmeHeaderHarness
    identifying_harness = AcmeIdentityHarness
"""


@pytest.mark.parametrize(
    "ini",
    ["[pytest]\n", "[pytest]\nasyncio_mode = strict\n", "[pytest]\nasyncio_mode = auto\n"],
    ids=["no-asyncio-setting", "asyncio-strict", "asyncio-auto"],
)
def test_subclassing_runs_every_test(pytester, ini):
    pytester.makeini(ini)
    pytester.makepyfile(test_acme=AUTHOR_TESTS)
    json_path = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", f"--conformance-json={json_path}")
    result.assert_outcomes(passed=60, skipped=1)
    result.stdout.fnmatch_lines(["*ogx-tenancy-conformance*suite 1.*", "*storage*core guarantee*"])


def test_subclassing_without_pytest_asyncio(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_acme=AUTHOR_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-p", "no:asyncio", "-k", "Storage")
    result.assert_outcomes(passed=36, skipped=1)


def test_a_suite_without_harness_says_what_to_do(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_bare="""
from ogx_tenancy_conformance import IdentitySuite

class TestBare(IdentitySuite):
    plugin_name = "sample_third_party"
"""
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-k", "plugin_loads")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*set harness = <your IdentityHarness subclass>*"])
