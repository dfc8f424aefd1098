"""The command line: help that explains, errors that say what to do, a list of every test id."""

from __future__ import annotations

import yaml

from ogx_tenancy_conformance.catalogue import catalogue


def test_help_explains_both_levels(run_cli):
    run = run_cli("--help")
    assert run.returncode == 0
    for words in ("plugin", "deployment", "list", "exit status", "Suite version"):
        assert words in run.stdout
    plugin_help = run_cli("plugin", "--help").stdout
    assert "ogx_tenancy_conformance group" in plugin_help and "--xfails" in plugin_help


def test_version_names_the_suite_version(run_cli):
    run = run_cli("--version")
    assert run.returncode == 0 and "(suite 1." in run.stdout


def test_unknown_plugin_is_a_usage_error_naming_the_installed_ones(run_cli):
    run = run_cli("plugin", "no_such_plugin")
    assert run.returncode == 2
    assert "no plugin named 'no_such_plugin'" in run.stderr and "sample_third_party" in run.stderr


def test_list_prints_every_test_id(run_cli):
    run = run_cli("list")
    assert run.returncode == 0
    for spec in catalogue():
        assert spec.id in run.stdout
    assert "core guarantee" in run.stdout


def test_bad_identities_file_names_the_key(run_cli, tmp_path):
    path = tmp_path / "ids.yaml"
    path.write_text(yaml.safe_dump({"identities": {"alice": {"headers": {"x-user": "alice"}}}}))
    run = run_cli("deployment", "--base-url", "http://127.0.0.1:9", "--identities", str(path))
    assert run.returncode == 2
    assert "identities" in run.stderr and "at least 2" in run.stderr


def test_identities_where_everyone_shares_a_team_are_refused(run_cli, tmp_path):
    path = tmp_path / "ids.yaml"
    path.write_text(yaml.safe_dump({"identities": {"a": {"token": "x"}, "b": {"token": "y"}}, "teams": [["a", "b"]]}))
    run = run_cli("deployment", "--base-url", "http://127.0.0.1:9", "--identities", str(path))
    assert run.returncode == 2 and "share nothing" in run.stderr
