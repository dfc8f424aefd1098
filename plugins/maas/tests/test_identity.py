"""The identity hook end to end: mapping, tenant, pseudo-groups, duplicates, and what is never echoed."""

from __future__ import annotations

import json

import pytest
from maas_helpers import ALICE, GATEWAY, OUTSIDER, identify, make_request, make_settings, rejected, signed

from ogx_tenancy import Identity, IdentityRejected
from ogx_tenancy.host import Tenancy
from ogx_tenancy.manager import PluginManager
from ogx_tenancy_maas import plugin

SECRET = "s3cr3t-team"


def test_maas_headers_become_an_identity():
    identity = identify(ALICE)
    assert identity == Identity(principal="alice", attributes={"teams": ["team-a"], "namespaces": ["gold"]})


def test_header_names_are_case_insensitive():
    settings = make_settings(principal_header="x-maas-username", attribute_headers={"X-MAAS-GROUP": "teams"})
    headers = {"X-MaaS-USERNAME": "alice", "x-maas-group": "[a b]"}
    assert identify(headers, settings) == Identity("alice", {"teams": ["a", "b"]})


def test_no_identity_header_is_no_identity():
    assert identify({"Authorization": "Bearer x"}) is None
    # not even from a peer that is not trusted: the host then answers 401 or serves a public route
    assert identify({}, client=OUTSIDER) is None
    assert identify({}, client=None) is None
    # signature headers alone carry no identity
    assert identify([("X-MaaS-Timestamp", "1"), ("X-MaaS-Signature", "0" * 64)], sign_it=False) is None


def test_attributes_without_a_principal_are_refused():
    rejection = rejected({"X-MaaS-Group": '["team-a"]'})
    assert (rejection.status, rejection.header) == (401, "X-MaaS-Username")


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_principal_is_refused(value):
    rejection = rejected({**ALICE, "X-MaaS-Username": value})
    assert (rejection.status, rejection.header) == (400, "X-MaaS-Username")


def test_over_long_principal_is_refused():
    rejection = rejected({**ALICE, "X-MaaS-Username": SECRET + "x" * 256})
    assert (rejection.status, rejection.header) == (400, "X-MaaS-Username")
    assert SECRET not in rejection.reason


# -- duplicates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["X-MaaS-Username", "X-MaaS-Group", "X-MaaS-Subscription"])
def test_a_duplicated_identity_header_is_refused(header):
    # what older Kuadrant did: append the gateway's value to the client's instead of replacing it
    pairs = [*ALICE.items(), (header.lower(), SECRET)]
    rejection = rejected(pairs)
    assert (rejection.status, rejection.header) == (400, header)
    assert "more than once" in rejection.reason and SECRET not in rejection.reason


@pytest.mark.parametrize("header", ["X-MaaS-Signature", "X-MaaS-Timestamp"])
def test_a_duplicated_signature_header_is_refused(header):
    pairs = signed(ALICE)
    pairs.append((header, dict(pairs)[header]))
    rejection = rejected(pairs, sign_it=False)
    assert (rejection.status, rejection.header) == (400, header)


def test_a_duplicated_tenant_header_is_refused():
    settings = make_settings(tenant_header="X-Tenant")
    rejection = rejected([*ALICE.items(), ("X-Tenant", "acme"), ("x-tenant", "other")], settings)
    assert (rejection.status, rejection.header) == (400, "X-Tenant")


def test_duplicates_from_an_untrusted_peer_are_refused_as_untrusted():
    rejection = rejected([*ALICE.items(), ("X-MaaS-Group", "x")], client=OUTSIDER)
    assert rejection.status == 403


# -- pseudo-groups and static attributes ----------------------------------------------------------


def test_pseudo_groups_are_dropped_by_default():
    groups = ["system:authenticated", "system:authenticated:oauth", "system:serviceaccounts", "team-a"]
    identity = identify({**ALICE, "X-MaaS-Group": json.dumps(groups)})
    assert identity is not None and identity.attributes["teams"] == ("team-a",)


def test_a_user_with_only_pseudo_groups_has_no_teams():
    identity = identify({**ALICE, "X-MaaS-Group": "[system:authenticated system:authenticated:oauth]"})
    assert identity is not None and "teams" not in identity.attributes


def test_pseudo_groups_can_be_kept_or_configured():
    kept = identify({**ALICE}, make_settings(pseudo_groups=[]))
    assert kept is not None and kept.attributes["teams"] == ("system:authenticated", "team-a")
    custom = identify({**ALICE, "X-MaaS-Group": "everyone, team-a"}, make_settings(pseudo_groups=["everyone"]))
    assert custom is not None and custom.attributes["teams"] == ("team-a",)


def test_two_headers_may_feed_one_category_and_static_attributes_are_added():
    settings = make_settings(
        attribute_headers={"X-MaaS-Group": "teams", "X-Extra-Teams": "teams"},
        static_attributes={"roles": ["user"], "teams": ["everyone-here"]},
    )
    identity = identify({**ALICE, "X-Extra-Teams": "team-b, team-a"}, settings)
    assert identity == Identity("alice", {"teams": ["team-a", "team-b", "everyone-here"], "roles": ["user"]})


# -- tenant ---------------------------------------------------------------------------------------


def test_tenant_from_a_header():
    settings = make_settings(tenant_header="X-Tenant")
    identity = identify({**ALICE, "X-Tenant": "acme_corp-1"}, settings)
    assert identity is not None and identity.tenant_id == "acme_corp-1"
    no_tenant = identify(ALICE, settings)
    assert no_tenant is not None and no_tenant.tenant_id is None


def test_tenant_from_the_subscription_attribute():
    settings = make_settings(tenant_from_attribute="namespaces")
    identity = identify(ALICE, settings)
    assert identity == Identity("alice", {"teams": ["team-a"], "namespaces": ["gold"]}, tenant_id="gold")
    without = identify({k: v for k, v in ALICE.items() if k != "X-MaaS-Subscription"}, settings)
    assert without is not None and without.tenant_id is None
    two = rejected({**ALICE, "X-MaaS-Subscription": '["gold","silver"]'}, settings)
    assert (two.status, two.header) == (400, "X-MaaS-Subscription") and "exactly one" in two.reason


@pytest.mark.parametrize("tenant", ["Acme", "ACME", "acme corp", "-acme", "_acme", "acme.corp", "a" * 129, "äcme"])
@pytest.mark.parametrize("source", ["header", "attribute"])
def test_non_canonical_tenants_are_refused_never_lower_cased(tenant, source):
    if source == "header":
        settings, headers = make_settings(tenant_header="X-Tenant"), {**ALICE, "X-Tenant": tenant}
        header = "X-Tenant"
    else:
        settings = make_settings(tenant_from_attribute="namespaces", max_value_length=512)
        headers, header = {**ALICE, "X-MaaS-Subscription": json.dumps(tenant)}, "X-MaaS-Subscription"
    rejection = rejected(headers, settings)
    assert (rejection.status, rejection.header) == (400, header)
    assert "canonical tenant" in rejection.reason and tenant not in rejection.reason


def test_longest_canonical_tenant_is_accepted():
    identity = identify({**ALICE, "X-Tenant": "a" * 128}, make_settings(tenant_header="X-Tenant"))
    assert identity is not None and identity.tenant_id == "a" * 128


# -- never echo -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {**ALICE, "X-MaaS-Group": f'["{SECRET}",'},
        {**ALICE, "X-MaaS-Group": f"[{SECRET}\u202e]"},
        {**ALICE, "X-MaaS-Group": ",".join([SECRET] * 2 + [f"g{i}" for i in range(70)])},
        {**ALICE, "X-MaaS-Subscription": f'{{"x": "{SECRET}"}}'},
        {"X-MaaS-Group": SECRET},
        [*ALICE.items(), ("X-MaaS-Group", SECRET)],
    ],
)
def test_rejections_never_echo_values(headers):
    rejection = rejected(headers)
    assert SECRET not in json.dumps(rejection.to_openai_error())


# -- through the host -----------------------------------------------------------------------------


def host_with_maas(block: dict) -> Tenancy:
    manager = PluginManager()
    manager.register(plugin, "maas")
    return Tenancy.from_config({"plugins": {"maas": block}}, manager=manager)


def test_the_host_calls_the_hook_with_the_plugins_settings():
    tenancy = host_with_maas({"trusted_proxy_cidrs": ["10.0.0.0/8"], "tenant_from_attribute": "namespaces"})
    identity = tenancy.identify(make_request(ALICE, GATEWAY))
    assert identity == Identity("alice", {"teams": ["team-a"], "namespaces": ["gold"]}, tenant_id="gold")
    with pytest.raises(IdentityRejected) as caught:
        tenancy.identify(make_request(ALICE, OUTSIDER))
    assert caught.value.status == 403
    assert tenancy.identify(make_request({}, OUTSIDER)) is None


def test_the_extractor_is_compiled_once_per_settings_instance():
    settings = make_settings()
    assert plugin.extractor_for(settings) is plugin.extractor_for(settings)
    assert plugin.extractor_for(make_settings()) is not plugin.extractor_for(settings)
