"""The host against a real OGX 1.5 server started by `ogx-tenancy run`.

The identity comes from the test plugin `tests/plugins/header_identity` (pip-installed, registered
through its entry point); `tests/plugins/broken_import` is installed too and fails on import.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from support.ogx import OgxServer, base_run_config, run_cli

pytestmark = pytest.mark.ogx_server

# Load exactly the plugins this test is about (other installed plugins, such as maas, would refuse
# to start without their own settings).
PLUGINS = {"OGX_TENANCY_PLUGINS": "header_identity,broken_import"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("host")
    config = base_run_config(workdir / "state")
    config["tenancy"] = {"plugins": {"header_identity": {"principal_header": "x-test-user"}}}
    with OgxServer(config, workdir, env=PLUGINS) as running:
        yield running


def client_for(server: OgxServer, user: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", default_headers={"x-test-user": user})


def test_each_user_sees_only_their_own_files(server, tmp_path):
    uploaded = {}
    for user in ("alice", "bob"):
        path = tmp_path / f"{user}.txt"
        path.write_text(f"notes of {user}")
        with path.open("rb") as f:
            uploaded[user] = client_for(server, user).files.create(file=f, purpose="assistants").id
    for user, other in (("alice", "bob"), ("bob", "alice")):
        client = client_for(server, user)
        listed = {f.id for f in client.files.list()}
        assert uploaded[user] in listed and uploaded[other] not in listed
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(uploaded[other])


def test_each_user_sees_only_their_own_prompts(server):
    created = {}
    for user in ("alice", "bob"):
        response = httpx.post(
            f"{server.base_url}/v1/prompts", json={"prompt": f"hello from {user}"}, headers={"x-test-user": user}
        )
        assert response.status_code == 200, response.text
        created[user] = response.json()["prompt_id"]
    for user, other in (("alice", "bob"), ("bob", "alice")):
        listed = httpx.get(f"{server.base_url}/v1/prompts", headers={"x-test-user": user}).json()["data"]
        ids = {p["prompt_id"] for p in listed}
        assert created[user] in ids and created[other] not in ids
        stolen = httpx.get(f"{server.base_url}/v1/prompts/{created[other]}", headers={"x-test-user": user})
        assert stolen.status_code in (403, 404)


def test_request_without_identity_gets_a_401_json_error(server):
    response = httpx.get(f"{server.base_url}/v1/files")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "authentication_error" and error["message"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused").files.list()


def test_duplicated_identity_header_is_a_400(server):
    response = httpx.get(f"{server.base_url}/v1/files", headers=[("x-test-user", "alice"), ("x-test-user", "bob")])
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-test-user"


def test_health_needs_no_identity(server):
    assert httpx.get(f"{server.base_url}/v1/health").status_code == 200


def test_plugin_failing_on_import_leaves_the_server_running_and_is_listed(server):
    result = run_cli("plugins", env=PLUGINS)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert "ImportError" in plugins["broken_import"]["error"]
    assert plugins["header_identity"]["hooks"] == ["ogx_tenancy_identity", "ogx_tenancy_settings_model"]
    assert httpx.get(f"{server.base_url}/v1/files", headers={"x-test-user": "alice"}).status_code == 200
    assert "plugin failed to load" in server.log_path.read_text()


def test_bad_tenancy_key_stops_startup_with_a_clear_message(tmp_path):
    config = base_run_config(tmp_path / "state")
    config["tenancy"] = {"plugins": {"header_identity": {"principal_hedaer": "x-test-user"}}}
    server = OgxServer(config, tmp_path)
    result = run_cli("run", str(server.config_path), "--port", str(server.port), env=PLUGINS)
    assert result.returncode == 2
    assert "plugin 'header_identity'" in result.stderr
    assert "tenancy.plugins.header_identity.principal_hedaer: unknown key" in result.stderr
    assert "principal_header" in result.stderr  # what was expected
