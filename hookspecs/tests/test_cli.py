"""The `ogx-tenancy` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from core_helpers import minimal_ogx_config

import ogx_tenancy


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    # no installed plugin is loaded (pitfall 10): these tests are about the command itself
    env = {**os.environ, "OGX_TENANCY_PLUGINS": ""}
    return subprocess.run(
        [sys.executable, "-m", "ogx_tenancy.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_version():
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"ogx-tenancy {ogx_tenancy.__version__}"


@pytest.mark.parametrize("command", [[], ["run"], ["check"], ["plugins"], ["hooks"], ["migrate"]])
def test_every_command_has_useful_help(command):
    result = cli(*command, "--help")
    assert result.returncode == 0
    assert "usage: ogx-tenancy" in result.stdout and len(result.stdout.splitlines()) > 5


def test_plugins_prints_json_list():
    result = cli("plugins", "--all")
    assert result.returncode == 0
    plugins = json.loads(result.stdout)
    assert isinstance(plugins, list)
    for plugin in plugins:
        assert {"name", "distribution", "version", "hooks"} <= plugin.keys()


def test_plugins_unknown_hook_lists_the_known_ones():
    result = cli("plugins", "--hook", "ogx_tenancy_identiy")
    assert result.returncode == 2
    assert "unknown hook 'ogx_tenancy_identiy'" in result.stderr and "ogx_tenancy_identity" in result.stderr


def test_check_reports_config_errors_with_exit_code_2(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**minimal_ogx_config(tmp_path), "tenancy": {"plugns": {}}}))
    result = cli("check", str(config))
    assert result.returncode == 2
    assert "tenancy.plugns: unknown key" in result.stderr


def test_check_missing_file(tmp_path):
    result = cli("check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "cannot read run config" in result.stderr


def test_hooks_prints_the_reference():
    result = cli("hooks")
    assert result.returncode == 0 and "## `ogx_tenancy_identity`" in result.stdout


def test_check_refuses_ogx_auth_provider_beside_our_identity_plugins(tmp_path):
    config = minimal_ogx_config(tmp_path)
    config["server"] = {"auth": {"provider_config": {"type": "upstream_header", "principal_header": "x-user"}}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    result = cli("check", str(tmp_path / "run.yaml"))
    assert result.returncode == 2 and "server.auth.provider_config: must be unset" in result.stderr


def test_check_summarises_a_good_config(tmp_path):
    config = minimal_ogx_config(tmp_path)
    config["server"] = {"tenancy": {"mode": "multi"}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    result = cli("check", str(tmp_path / "run.yaml"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tenancy_mode"] == "multi" and summary["policy"] == "default"
