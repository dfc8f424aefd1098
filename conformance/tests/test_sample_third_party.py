"""The sample third-party plugin (tests/plugins/sample_third_party, pip-installed) passes with no code."""

from __future__ import annotations


def test_sample_third_party_passes_every_family(run_cli):
    run = run_cli("plugin", "sample_third_party")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert run.report["conforms"] is True and not run.failed()
    families = {r["family"] for r in run.report["results"]}
    assert families == {"identity", "storage", "headers"}
    results = run.results()
    # every core guarantee of every family ran and passed: none can be skipped
    core = [r for r in results.values() if r["core"]]
    assert len(core) >= 10 and all(r["outcome"] == "passed" for r in core)
    # the plugin declares persistent=False: that test is skipped, naming the capability and where it is declared
    persistence = results["storage.persistence[acme-memory]"]
    assert persistence["outcome"] == "skipped"
    assert "capability 'persistent' not declared (StoreCapabilities.persistent)" in persistence["message"]


def test_report_header_table_json_and_junit(run_cli):
    run = run_cli("plugin", "sample_third_party", "-k", "merge_order or plugin_loads")
    assert run.returncode == 0, run.stdout[-3000:]
    header = run.report["header"]
    assert "ogx-tenancy-conformance" in header and "(suite 1." in header
    assert "plugin sample_third_party (ogx-tenancy-sample-third-party 0.1.0)" in header
    assert header in run.stdout  # printed as the pytest report header and above the table
    assert "family    capability" in run.stdout and "core guarantee" in run.stdout
    rows = {(row["family"], row["capability"]): row for row in run.report["table"]}
    assert rows[("identity", "core guarantee")]["passed"] == 1
    assert rows[("storage", "required")]["passed"] == 1
    assert 'name="conformance_id" value="identity.merge-order-independent"' in run.junit
    assert 'name="clause" value="order-independence"' in run.junit
