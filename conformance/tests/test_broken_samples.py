"""Each deliberately broken sample plugin is caught, and the failure names the broken guarantee."""

from __future__ import annotations

import pytest

CASES = {
    # plugin: (test id that must fail, words its message must contain)
    "broken_page2_leak": (
        "storage.tenant-isolation-paging[acme-memory-default]",
        ["core guarantee broken [tenant-isolation]", "page 2", "tenant-beta"],
    ),
    "broken_unchecked_create": (
        "storage.create-is-checked[acme-memory-writers-create]",
        ["contract broken [policy-decides]", "create", "the policy denies create"],
    ),
    "broken_duplicate_header": (
        "identity.duplicated-header-refused",
        ["core guarantee broken [no-untrusted-identity]", "sent twice", "was believed"],
    ),
    "broken_global_header": (
        "headers.identity-argument-only",
        ["core guarantee broken [no-concurrent-leak]", "while acting as"],
    ),
    "broken_trusts_client": (
        "identity.forged-request-refused",
        ["core guarantee broken [no-untrusted-identity]", "forged request", "was believed"],
    ),
}


@pytest.mark.parametrize("plugin", sorted(CASES))
def test_broken_sample_is_caught(run_cli, plugin):
    test_id, words = CASES[plugin]
    run = run_cli("plugin", plugin)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.report["conforms"] is False
    failed = run.failed()
    assert test_id in failed, sorted(failed)
    for word in words:
        assert word in failed[test_id], failed[test_id]
    assert f"  {test_id}: " in run.stdout  # listed under "failed:" after the table


def test_only_the_defect_fails(run_cli):
    """The broken samples are the sample plugin with one defect: the rest of their family still passes."""
    run = run_cli("plugin", "broken_unchecked_create")
    assert set(run.failed()) == {"storage.create-is-checked[acme-memory-writers-create]"}
    assert sum(1 for r in run.report["results"] if r["outcome"] == "passed") > 20
