"""The xfail file: expected failures by stable id, strict, with warnings for ids that match nothing and
no escape hatch for core guarantees."""

from __future__ import annotations


def test_expected_failure_is_reported_as_xfail(run_cli, tmp_path):
    xfails = tmp_path / "xfails.txt"
    xfails.write_text(
        "storage.create-is-checked[acme-memory-writers-create]   # we know: fixed in 0.2\nstorage.no-such-test\n"
    )
    run = run_cli("plugin", "broken_unchecked_create", "--xfails", str(xfails))
    assert run.returncode == 0, run.stdout[-3000:]
    results = run.results()
    assert results["storage.create-is-checked[acme-memory-writers-create]"]["outcome"] == "xfailed"
    assert "we know: fixed in 0.2" in results["storage.create-is-checked[acme-memory-writers-create]"]["message"]
    assert results["storage.create-is-checked[acme-memory-default]"]["outcome"] == "passed"
    assert "xfail file line 2: 'storage.no-such-test' matches no collected test" in run.report["warnings"]
    assert "matches no collected test" in run.stdout


def test_listed_test_that_passes_fails_the_run(run_cli, tmp_path):
    """Strict: a listed test that passes is an unexpected success; a bare id lists every parametrization."""
    xfails = tmp_path / "xfails.txt"
    xfails.write_text("storage.create-is-checked\n")
    run = run_cli("plugin", "sample_third_party", "-k", "create_is_checked", "--xfails", str(xfails))
    assert run.returncode == 1
    outcomes = {i: r["outcome"] for i, r in run.results().items()}
    assert len(outcomes) == 5 and set(outcomes.values()) == {"xpassed"}, outcomes


def test_core_guarantees_cannot_be_excused(run_cli, tmp_path):
    xfails = tmp_path / "xfails.txt"
    xfails.write_text("identity.duplicated-header-refused  # please\n")
    run = run_cli("plugin", "broken_duplicate_header", "--xfails", str(xfails))
    assert run.returncode == 1
    assert run.results()["identity.duplicated-header-refused"]["outcome"] == "failed"
    assert any("is a core guarantee test" in w and "cannot be expected to fail" in w for w in run.report["warnings"])


def test_unreadable_xfail_file_is_a_usage_error(run_cli, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("not an id with spaces\n")
    run = run_cli("plugin", "sample_third_party", "--xfails", str(bad))
    assert run.returncode == 2
    assert "bad.txt:1: expected one test id" in run.stdout + run.stderr
