"""The ``tenancy.plugins.maas`` block: start-up errors name the plugin, the key and what was expected."""

from __future__ import annotations

import pytest
import yaml
from maas_helpers import ALICE, GATEWAY, KEY, make_request, signed
from structlog.testing import capture_logs

from ogx_tenancy.host import Tenancy
from ogx_tenancy.manager import PluginManager
from ogx_tenancy.settings import ConfigError
from ogx_tenancy_maas import MaasSettings, plugin


def manager() -> PluginManager:
    plugins = PluginManager()
    plugins.register(plugin, "maas")
    return plugins


def start(block: dict | None) -> Tenancy:
    """What `ogx-tenancy run` and `check` do with the tenancy section."""
    return Tenancy.from_config({"plugins": {"maas": block}} if block is not None else None, manager=manager())


def start_error(block: dict | None) -> str:
    with pytest.raises(ConfigError) as caught:
        start(block)
    message = str(caught.value)
    assert message.startswith("plugin 'maas': tenancy.plugins.maas")
    return message


@pytest.mark.parametrize("block", [None, {}, {"trusted_proxy_cidrs": []}, {"hmac_key": None}])
def test_start_up_fails_without_a_trust_check(block):
    message = start_error(block)
    for word in ("no trust check", "trusted_proxy_cidrs", "hmac_key", "allow_unverified: true"):
        assert word in message


def test_allow_unverified_starts_with_a_loud_warning():
    with capture_logs() as logs:
        start({"allow_unverified": True})
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["plugin"] == "maas" and "WITHOUT verification" in warnings[0]["event"]


def test_a_verified_config_starts_quietly_and_ignores_allow_unverified():
    with capture_logs() as logs:
        tenancy = start({"trusted_proxy_cidrs": ["10.0.0.0/8"], "allow_unverified": True})
    assert not [entry for entry in logs if entry["log_level"] == "warning"]
    assert isinstance(tenancy.plugin_settings["maas"], MaasSettings)


def test_defaults_match_maas():
    settings = MaasSettings(trusted_proxy_cidrs=["10.0.0.0/8"])
    assert settings.principal_header == "X-MaaS-Username"
    assert settings.attribute_headers == {"X-MaaS-Group": "teams", "X-MaaS-Subscription": "namespaces"}
    assert settings.pseudo_groups == ["system:authenticated", "system:authenticated:oauth", "system:serviceaccounts"]
    assert (settings.max_value_length, settings.max_values, settings.max_clock_skew_seconds) == (256, 64, 60)
    assert settings.identity_headers == ("x-maas-group", "x-maas-subscription", "x-maas-username")


def test_every_setting_is_documented():
    undocumented = [name for name, field in MaasSettings.model_fields.items() if not field.description]
    assert undocumented == []


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"trusted_proxy_cidr": ["10.0.0.0/8"]}, "trusted_proxy_cidr: unknown key (expected one of:"),
        ({"trusted_proxy_cidrs": ["10.0.0.1/8"]}, "trusted_proxy_cidrs: '10.0.0.1/8' is not a network in CIDR"),
        ({"trusted_proxy_cidrs": ["gateway"]}, "trusted_proxy_cidrs: 'gateway' is not a network in CIDR"),
        ({"trusted_proxy_cidrs": "10.0.0.0/8"}, "trusted_proxy_cidrs: Input should be a valid list"),
        ({"hmac_key": "short"}, "hmac_key: an HMAC key must be at least 32 characters"),
        ({"hmac_key": KEY, "hmac_previous_keys": ["short"]}, "hmac_previous_keys: an HMAC key must be at least 32"),
        ({"trusted_proxy_cidrs": ["10.0.0.0/8"], "hmac_previous_keys": [KEY]}, "hmac_previous_keys needs hmac_key"),
        ({"forwarded_for_hops": 1, "hmac_key": KEY}, "forwarded_for_hops needs trusted_proxy_cidrs"),
        ({"forwarded_for_hops": -1, "hmac_key": KEY}, "forwarded_for_hops: Input should be greater than or equal"),
        ({"hmac_key": KEY, "max_value_length": 0}, "max_value_length: Input should be greater than or equal to 1"),
        ({"hmac_key": KEY, "max_clock_skew_seconds": 86400}, "max_clock_skew_seconds: Input should be less than"),
        ({"hmac_key": KEY, "principal_header": "X User"}, "principal_header: 'X User' is not a valid HTTP header"),
        ({"hmac_key": KEY, "attribute_headers": {"X-G": ""}}, "the category of header 'X-G' must not be empty"),
        (
            {"hmac_key": KEY, "attribute_headers": {"X-MaaS-Username": "teams"}},
            "one role only; used more than once: x-maas-username",
        ),
        ({"hmac_key": KEY, "tenant_header": "x-maas-signature"}, "used more than once: x-maas-signature"),
        ({"hmac_key": KEY, "attribute_headers": {"X-Forwarded-For": "teams"}}, "X-Forwarded-For cannot be"),
        (
            {"hmac_key": KEY, "tenant_header": "X-Tenant", "tenant_from_attribute": "namespaces"},
            "set tenant_header or tenant_from_attribute, not both",
        ),
        ({"hmac_key": KEY, "tenant_from_attribute": "projects"}, "must map to category 'projects' (found 0)"),
        ({"hmac_key": KEY, "static_attributes": {"roles": [""]}}, "categories and values must be non-empty"),
    ],
)
def test_bad_settings_name_the_key_and_the_expectation(block, expected):
    assert expected in start_error(block)


def test_errors_and_repr_never_show_a_key():
    secret_but_short = "tiny-secret"
    assert secret_but_short not in start_error({"hmac_key": secret_but_short})
    settings = MaasSettings(hmac_key=KEY, hmac_previous_keys=[KEY[::-1]])
    assert KEY not in repr(settings) and KEY[::-1] not in repr(settings)
    assert KEY not in str(settings.model_dump())


def test_hmac_key_comes_from_the_environment(tmp_path, monkeypatch):
    from ogx_tenancy.adapter.runconfig import load_run_config  # imports OGX

    monkeypatch.setenv("MAAS_TEST_HMAC_KEY", KEY)
    config = {
        "version": 2,
        "distro_name": "maas-settings-test",
        "apis": [],
        "providers": {},
        "storage": {
            "backends": {
                "kv_default": {"type": "kv_sqlite", "db_path": str(tmp_path / "kv.db")},
                "sql_default": {"type": "sql_sqlite", "db_path": str(tmp_path / "sql.db")},
            },
            "stores": {
                "metadata": {"backend": "kv_default", "namespace": "registry"},
                "inference": {"backend": "sql_default", "table_name": "inference_store"},
                "conversations": {"backend": "sql_default", "table_name": "conversations"},
                "prompts": {"backend": "sql_default", "table_name": "prompts"},
                "connectors": {"backend": "sql_default", "table_name": "connectors"},
            },
        },
        "tenancy": {"plugins": {"maas": {"hmac_key": "${env.MAAS_TEST_HMAC_KEY}"}}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    tenancy = load_run_config(path, manager=manager()).tenancy
    assert tenancy.plugin_settings["maas"].hmac_key.get_secret_value() == KEY
    identity = tenancy.identify(make_request(signed(ALICE), GATEWAY))
    assert identity is not None and identity.principal == "alice"
