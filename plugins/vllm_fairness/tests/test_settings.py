"""Settings validation: every bad block stops start-up with a message naming the plugin, the key
and what was expected — validated the way the host validates it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ogx_tenancy.settings import ConfigError, validate_plugin_settings
from ogx_tenancy_vllm_fairness.settings import AttributeSource, FairnessSettings

WHERE = "tenancy.plugins.vllm_fairness"


def error_for(block: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_settings("vllm_fairness", FairnessSettings, block)
    message = str(caught.value)
    assert message.startswith("plugin 'vllm_fairness': "), message
    return message


def test_an_absent_block_is_valid_and_uses_the_tenant():
    settings = validate_plugin_settings("vllm_fairness", FairnessSettings, None)
    assert settings.sources == ["tenant"] and settings.header_names == "gie" and settings.max_distinct_ids == 900


def test_the_documented_example_is_valid():
    settings = validate_plugin_settings("vllm_fairness", FairnessSettings, {
        "sources": [{"attribute": "teams", "select": "precedence", "precedence": ["platform", "research"]}, "tenant"],
        "fallback_id": "shared", "system_id": "ogx-system",
        "opaque_ids": {"key": "a-long-enough-secret-key", "length": 16},
        "max_distinct_ids": 900, "overflow_id": "overflow", "header_names": "both",
        "objective": {"attribute": "subscriptions", "values": {"gold": "premium", "free": "best-effort"},
                      "default": "standard"},
    })
    assert isinstance(settings.sources[0], AttributeSource) and settings.sources[1] == "tenant"


@pytest.mark.parametrize(("block", "expected"), [
    ({"bogus": 1}, f"{WHERE}.bogus: unknown key (expected one of: "),
    ({"sources": ["tenants"]}, f"{WHERE}.sources.0.named: Input should be 'tenant' or 'principal'"),
    ({"sources": "tenant"}, f"{WHERE}.sources: Input should be a valid list"),
    ({"sources": [{"attribute": "teams", "select": "random"}]},
     f"{WHERE}.sources.0.attribute.select: Input should be 'first', 'lowest', 'precedence' or 'joined'"),
    ({"sources": [{"select": "first"}]}, f"{WHERE}.sources.0.attribute.attribute: required key is missing"),
    ({"sources": [{"attribute": ""}]}, f"{WHERE}.sources.0.attribute.attribute: String should have at least 1"),
    ({"sources": [{"attribute": "teams", "colour": "red"}]}, f"{WHERE}.sources.0.attribute.colour: unknown key"),
    ({"sources": [{"attribute": "teams", "select": "precedence"}]},
     "select: precedence needs a non-empty precedence list"),
    ({"sources": [{"attribute": "teams", "precedence": ["a"]}]},
     "precedence is only used with select: precedence (select is first)"),
    ({"sources": [{"attribute": "teams", "select": "lowest", "separator": ","}]},
     "separator is only used with select: joined (select is lowest)"),
    ({"sources": [], "fallback_id": None}, "sources is empty and fallback_id is unset"),
    ({"fallback_id": "has space"}, f"{WHERE}.fallback_id: Value error, fallback_id must be 1-128 visible ASCII"),
    ({"system_id": ""}, f"{WHERE}.system_id: Value error, system_id must be 1-128 visible ASCII"),
    ({"overflow_id": "x" * 129}, f"{WHERE}.overflow_id: Value error, overflow_id must be 1-128 visible ASCII"),
    ({"opaque_ids": {"key": "too-short"}}, f"{WHERE}.opaque_ids.key: Value error, key must be at least 16"),
    ({"opaque_ids": {"key": "k" * 20, "length": 4}}, f"{WHERE}.opaque_ids.length: Input should be greater than or"),
    ({"opaque_ids": {}}, f"{WHERE}.opaque_ids.key: required key is missing"),
    ({"max_distinct_ids": 0}, f"{WHERE}.max_distinct_ids: Input should be greater than or equal to 1"),
    ({"header_names": "istio"}, f"{WHERE}.header_names: Input should be 'gie', 'llm-d' or 'both'"),
    ({"objective": {"attribute": "subscriptions"}}, "objective needs values, a default, or both"),
    ({"objective": {"attribute": "s", "values": {"gold": "Premium_Tier"}}},
     "objective name for value #1 must name an InferenceObjective"),
    ({"objective": {"attribute": "s", "default": "-bad"}}, "default must name an InferenceObjective"),
    ({"objective": {"attribute": "s", "default": "ok", "priority": 3}}, f"{WHERE}.objective.priority: unknown key"),
    ({"system_objective": "UPPER"}, "system_objective must name an InferenceObjective"),
    ({"excluded_values": [""]}, "excluded_values must hold non-empty patterns"),
])
def test_bad_settings_name_the_key_and_the_expectation(block, expected):
    assert expected in error_for(block)


def test_a_nested_unknown_key_does_not_list_the_top_level_keys():
    message = error_for({"objective": {"attribute": "s", "default": "ok", "priority": 3}})
    assert "expected one of" not in message


def test_the_opaque_key_is_never_echoed():
    secret = "secret-but-short"[:15]
    assert secret not in error_for({"opaque_ids": {"key": secret}})
    settings = FairnessSettings.model_validate({"opaque_ids": {"key": "a-long-enough-secret-key"}})
    assert "a-long-enough-secret-key" not in repr(settings) and "a-long-enough-secret-key" not in str(settings)



def test_the_readme_run_config_is_valid():
    from ogx_tenancy_vllm_fairness.ogx_adapter import TenancyVLLMConfig

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "vllm_fairness:" in b)
    config = yaml.safe_load(block.replace("${env.FAIRNESS_ID_KEY}", "a-long-enough-secret-key"))
    block = config["tenancy"]["plugins"]["vllm_fairness"]
    settings = validate_plugin_settings("vllm_fairness", FairnessSettings, block)
    assert settings.header_names == "both" and settings.opaque_ids is not None
    (provider,) = config["providers"]["inference"]
    assert (provider["provider_type"], provider["module"]) == ("remote::vllm-tenancy", "ogx_tenancy_vllm_fairness")
    assert str(TenancyVLLMConfig(**provider["config"]).base_url).startswith("http://llm-d-gateway")
