"""The maas plugin in front of a real OGX 1.5 server started by `ogx-tenancy run`.

Each request goes through a stand-in for the MaaS gateway (``support.maas.MaasGateway``) that sets
and signs the identity headers, as the real gateway would. OGX's own files and prompts under OGX's
default policy (share when any attribute value is shared) hold the data.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from support.maas import HMAC_KEY, MaasUser, http_client, openai_client
from support.ogx import OgxServer, base_run_config, run_cli

from ogx_tenancy_maas import sign

pytestmark = pytest.mark.ogx_server

ONLY_MAAS = {"OGX_TENANCY_PLUGINS": "maas"}
ALICE = MaasUser("alice", ["system:authenticated", "team-ml"], "gold")
BOB = MaasUser("bob", ["system:authenticated", "system:authenticated:oauth", "team-ml"], "silver")
CAROL = MaasUser("carol", ["system:authenticated", "system:authenticated:oauth"], "bronze")


def start(tmp_path_factory, name: str, maas: dict, env: dict | None = None) -> OgxServer:
    workdir = tmp_path_factory.mktemp(name)
    config = base_run_config(workdir / "state")
    config["tenancy"] = {"plugins": {"maas": maas}}
    return OgxServer(config, workdir, env={**ONLY_MAAS, **(env or {})}).start()


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory):
    """Trusts the loopback network as the gateway's, and its signature; the key comes from the environment."""
    server = start(
        tmp_path_factory,
        "maas-signed",
        {"trusted_proxy_cidrs": ["127.0.0.0/8"], "hmac_key": "${env.MAAS_TEST_HMAC_KEY}"},
        env={"MAAS_TEST_HMAC_KEY": HMAC_KEY},
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def remote_gateway_server(tmp_path_factory):
    """Trusts only 10.0.0.0/8, while the tests connect from 127.0.0.1."""
    server = start(tmp_path_factory, "maas-cidr", {"trusted_proxy_cidrs": ["10.0.0.0/8"]})
    yield server
    server.stop()


def upload(server: OgxServer, user: MaasUser, tmp_path) -> str:
    path = tmp_path / f"{user.username}.txt"
    path.write_text(f"notes of {user.username}")
    with path.open("rb") as f:
        return openai_client(server.base_url, user).files.create(file=f, purpose="assistants").id


def create_prompt(server: OgxServer, user: MaasUser) -> str:
    with http_client(server.base_url, user) as client:
        response = client.post("/v1/prompts", json={"prompt": f"hello from {user.username}"})
    assert response.status_code == 200, response.text
    return response.json()["prompt_id"]


def visible(server: OgxServer, user: MaasUser) -> tuple[set[str], set[str]]:
    """The file ids and prompt ids ``user`` can list."""
    files = {f.id for f in openai_client(server.base_url, user).files.list()}
    with http_client(server.base_url, user) as client:
        prompts = {p["prompt_id"] for p in client.get("/v1/prompts").json()["data"]}
    return files, prompts


# -- three users, one shared team -----------------------------------------------------------------


def test_team_mates_share_and_a_pseudo_group_shares_nothing(gateway_server, tmp_path):
    alice_file, alice_prompt = upload(gateway_server, ALICE, tmp_path), create_prompt(gateway_server, ALICE)
    carol_file, carol_prompt = upload(gateway_server, CAROL, tmp_path), create_prompt(gateway_server, CAROL)

    bob_files, bob_prompts = visible(gateway_server, BOB)
    assert alice_file in bob_files and alice_prompt in bob_prompts  # team-ml is shared
    assert carol_file not in bob_files and carol_prompt not in bob_prompts

    carol_files, carol_prompts = visible(gateway_server, CAROL)
    assert carol_file in carol_files and carol_prompt in carol_prompts
    assert alice_file not in carol_files and alice_prompt not in carol_prompts
    with pytest.raises(openai.NotFoundError):
        openai_client(gateway_server.base_url, CAROL).files.retrieve(alice_file)
    with http_client(gateway_server.base_url, CAROL) as client:
        assert client.get(f"/v1/prompts/{alice_prompt}").status_code in (403, 404)
        assert client.delete(f"/v1/files/{alice_file}").status_code in (403, 404)
    assert alice_file in visible(gateway_server, ALICE)[0]  # still there


# -- the signature --------------------------------------------------------------------------------


def test_a_correctly_signed_request_passes(gateway_server):
    response = httpx.get(f"{gateway_server.base_url}/v1/files", headers=ALICE.signed_headers())
    assert response.status_code == 200, response.text


def assert_refused(response: httpx.Response, status: int, param: str | None, *, not_echoed: str = "") -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["param"] == param and error["message"]
    if not_echoed:
        assert not_echoed not in response.text
    return error


def test_a_tampered_request_is_refused(gateway_server):
    headers = ALICE.signed_headers() | {"X-MaaS-Group": json.dumps(["team-ml", "admins-tampered"])}
    response = httpx.get(f"{gateway_server.base_url}/v1/files", headers=headers)
    error = assert_refused(response, 403, "X-MaaS-Signature", not_echoed="admins-tampered")
    assert error["type"] == "permission_denied"


def test_a_stale_or_future_signature_is_refused(gateway_server):
    for age in (3600, 61, -3600):
        response = httpx.get(f"{gateway_server.base_url}/v1/files", headers=ALICE.signed_headers(age_seconds=age))
        assert_refused(response, 403, "X-MaaS-Timestamp")


def test_an_unsigned_request_from_the_trusted_network_is_refused(gateway_server):
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(gateway_server.base_url, ALICE, key=None).files.list()


def test_a_signature_made_with_another_key_is_refused(gateway_server):
    response = httpx.get(f"{gateway_server.base_url}/v1/files", headers=ALICE.signed_headers("x" * 40))
    assert_refused(response, 403, "X-MaaS-Signature")


def test_a_duplicated_identity_header_is_refused(gateway_server):
    # what a gateway that appends instead of overwriting produces: the client's copy and its own
    signed = ALICE.signed_headers()
    pairs = [("X-MaaS-Username", "mallory"), *signed.items()]
    response = httpx.get(f"{gateway_server.base_url}/v1/files", headers=pairs)
    assert_refused(response, 400, "X-MaaS-Username", not_echoed="mallory")
    group_twice = [*signed.items(), ("x-maas-group", '["admins-dup"]')]
    response = httpx.get(f"{gateway_server.base_url}/v1/files", headers=group_twice)
    assert_refused(response, 400, "X-MaaS-Group", not_echoed="admins-dup")


def test_malformed_values_are_refused_with_400_never_500(gateway_server):
    for group in ('["team-ml", "unterminated-secret"', "team\u202e-secret", '{"teams": ["object-secret"]}'):
        headers = ALICE.headers() | {"X-MaaS-Group": group}
        headers |= sign(headers, HMAC_KEY)
        response = httpx.get(f"{gateway_server.base_url}/v1/files", headers={k: v.encode() for k, v in headers.items()})
        assert_refused(response, 400, "X-MaaS-Group", not_echoed="secret")


def test_no_identity_headers_is_401_and_health_stays_public(gateway_server):
    assert_refused(httpx.get(f"{gateway_server.base_url}/v1/files"), 401, None)
    assert httpx.get(f"{gateway_server.base_url}/v1/health").status_code == 200


# -- the peer check -------------------------------------------------------------------------------


def test_a_request_from_outside_the_trusted_networks_is_refused(remote_gateway_server):
    url = f"{remote_gateway_server.base_url}/v1/files"
    error = assert_refused(httpx.get(url, headers=ALICE.headers()), 403, None)
    assert "trusted_proxy_cidrs" in error["message"]
    # claiming to come through the gateway changes nothing
    forwarded = ALICE.headers() | {"X-Forwarded-For": "10.1.2.3"}
    assert_refused(httpx.get(url, headers=forwarded), 403, None)
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(remote_gateway_server.base_url, ALICE, key=None).files.list()
    # with no identity at all the host answers as usual
    assert_refused(httpx.get(url), 401, None)
    assert httpx.get(f"{remote_gateway_server.base_url}/v1/health").status_code == 200


# -- start-up -------------------------------------------------------------------------------------


def test_start_up_fails_without_a_trust_check(tmp_path):
    config = base_run_config(tmp_path / "state")
    config["tenancy"] = {"plugins": {"maas": {"principal_header": "X-MaaS-Username"}}}
    server = OgxServer(config, tmp_path)
    for command in (["check", str(server.config_path)], ["run", str(server.config_path), "--port", str(server.port)]):
        result = run_cli(*command, env=ONLY_MAAS)
        assert result.returncode == 2, result.stderr
        assert "configuration error" in result.stderr and "plugin 'maas'" in result.stderr
        for word in ("no trust check", "trusted_proxy_cidrs", "hmac_key", "allow_unverified"):
            assert word in result.stderr
    assert not server.log_path.exists()  # nothing was started


def test_allow_unverified_starts_with_a_warning_and_keeps_pseudo_groups_if_told(tmp_path_factory, tmp_path):
    """The counterfactual of the three-user test: keep the pseudo-groups and carol sees alice's file,
    exactly OGX's own weakness. Also shows the start-up warning of an unverified deployment."""
    server = start(tmp_path_factory, "maas-unverified", {"allow_unverified": True, "pseudo_groups": []})
    try:
        assert "identity headers are believed WITHOUT verification" in server.log_path.read_text()
        alice_file = upload(server, ALICE, tmp_path)
        assert alice_file in visible(server, CAROL)[0]
    finally:
        server.stop()
