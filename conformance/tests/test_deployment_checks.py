"""Deployment checks against small HTTP servers that misbehave on purpose: each check must catch its fault.

(The deployment suite's passing runs, against real OGX servers, are in the repository's ``tests/``.)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ogx_tenancy_conformance.deployment import deployment_tests
from ogx_tenancy_conformance.deployment.config import IdentitiesFile
from ogx_tenancy_conformance.guarantees import ContractViolation


@contextmanager
def _serve(echo: bool) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            group = self.headers.get("x-group", "")
            if (group.startswith(("[", "{")) and not group.endswith(("]", "}"))) or len(group) > 256:
                detail = f"bad x-group: {group}" if echo else "header x-group is malformed"
                self._answer(400, {"error": {"message": detail}})
            else:
                self._answer(200, {"data": []})

        def _answer(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _deployment(base_url: str) -> deployment_tests.Deployment:
    identities = IdentitiesFile.model_validate(
        {
            "identities": {
                "alice": {"headers": {"x-user": "alice", "x-group": '["team-a"]'}},
                "bob": {"headers": {"x-user": "bob", "x-group": '["team-b"]'}},
            }
        }
    )
    return deployment_tests.Deployment(base_url, identities)


@pytest.mark.parametrize("echo", [False, True], ids=["quiet", "echoing"])
def test_bad_identity_values_not_echoed_catches_an_echo(echo):
    with _serve(echo) as base_url:
        deployment = _deployment(base_url)
        check = deployment_tests.TestDeployment().test_bad_identity_values_not_echoed
        try:
            if echo:
                with pytest.raises(ContractViolation) as caught:
                    check(deployment)
                message = str(caught.value)
                assert "[no-echo]" in message and "x-group" in message and "echoes the value" in message
            else:
                check(deployment)  # a server that does not echo passes
        finally:
            deployment.close()
