"""Kill the server (SIGKILL) while prompt defaults are being switched, again and again; after every
restart each prompt still has exactly one default, and it is the version whose text the API serves.

Threads keep switching defaults and adding versions (``set_as_default``) through the HTTP API of a
real OGX started by ``ogx-tenancy run``; the kill lands after a random number of completed switches,
with requests in flight. SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import shutil
import signal
import tempfile
import threading
from contextlib import nullcontext
from pathlib import Path

import httpx
import pytest
from support.ogx import OgxServer, base_run_config
from support.services import ALICE, fresh_pg_database, http, storage_config

from ogx_tenancy.adapter.wiring import RUNTIME_PREFIX

pytestmark = pytest.mark.ogx_server

ROUNDS = 4
PROMPTS = 6
WORKERS = 4
BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


def config_for(state: Path, storage: dict) -> dict:
    config = base_run_config(state)
    config["tenancy"] = {
        "plugins": {"header_identity": {}},
        "storage": storage,
        "services": {"prompts": {}},
    }
    return config


def start(config: dict, workdir: Path) -> OgxServer:
    return OgxServer(config, workdir, env={"OGX_TENANCY_PLUGINS": "header_identity,sql"}).start()


def remove_derived_config(server: OgxServer) -> None:
    # a SIGKILLed server cannot remove the run config it derived for OGX (wiring.py names it by pid)
    assert server.process is not None
    for path in Path(tempfile.gettempdir()).glob(f"{RUNTIME_PREFIX}{server.process.pid}-*"):
        shutil.rmtree(path, ignore_errors=True)


def check_every_prompt_has_one_default(server: OgxServer, prompt_ids: list[str]) -> None:
    client = http(server, ALICE)
    for prompt_id in prompt_ids:
        versions = client.get(f"/v1/prompts/{prompt_id}/versions").json()["data"]
        defaults = [v for v in versions if v["is_default"]]
        assert len(defaults) == 1, (prompt_id, versions)
        served = client.get(f"/v1/prompts/{prompt_id}").json()
        assert served == defaults[0], (prompt_id, served, defaults[0])
    listed = {p["prompt_id"]: p for p in client.get("/v1/prompts").json()["data"]}
    assert set(prompt_ids) <= set(listed)
    assert all(listed[p]["is_default"] for p in prompt_ids)


def switch_defaults(server: OgxServer, prompt_ids: list[str], stop: threading.Event, counts: dict) -> None:
    rng = random.Random()
    client = httpx.Client(base_url=server.base_url, headers=ALICE.headers(), timeout=30)
    while not stop.is_set():
        prompt_id = rng.choice(prompt_ids)
        try:
            versions = client.get(f"/v1/prompts/{prompt_id}/versions").json()["data"]
            if rng.random() < 0.2:
                latest = max(v["version"] for v in versions)
                body = {"prompt": f"v{latest + 1}", "version": latest, "set_as_default": True}
                response = client.put(f"/v1/prompts/{prompt_id}", json=body)
            else:
                version = rng.choice(versions)["version"]
                response = client.put(f"/v1/prompts/{prompt_id}/set-default-version", json={"version": version})
            with counts["lock"]:
                counts["done" if response.status_code == 200 else "refused"] += 1
        except (httpx.HTTPError, ValueError):
            with counts["lock"]:
                counts["interrupted"] += 1
            return  # the server is gone


@pytest.mark.parametrize("backend", BACKENDS)
def test_defaults_survive_sigkill_mid_switch(backend, tmp_path):
    with fresh_pg_database("ogxt_crash") if backend == "postgres" else nullcontext() as pg:
        config = config_for(tmp_path / "state", storage_config(backend, tmp_path / "state", pg["dsn"] if pg else None))
        server = start(config, tmp_path)
        try:
            client = http(server, ALICE)
            prompt_ids = []
            for i in range(PROMPTS):
                prompt_id = client.post("/v1/prompts", json={"prompt": f"prompt {i} v1"}).json()["prompt_id"]
                for version in range(1, 4):
                    body = {"prompt": f"prompt {i} v{version + 1}", "version": version, "set_as_default": False}
                    assert client.put(f"/v1/prompts/{prompt_id}", json=body).status_code == 200
                prompt_ids.append(prompt_id)
            interrupted = 0
            for round_ in range(ROUNDS):
                stop = threading.Event()
                counts = {"lock": threading.Lock(), "done": 0, "refused": 0, "interrupted": 0}
                workers = [
                    threading.Thread(target=switch_defaults, args=(server, prompt_ids, stop, counts))
                    for _ in range(WORKERS)
                ]
                for worker in workers:
                    worker.start()
                kill_after = random.randint(20, 80)
                while counts["done"] < kill_after and any(w.is_alive() for w in workers):
                    threading.Event().wait(0.01)
                server.stop(signal.SIGKILL)  # mid-flight: the workers are still sending
                stop.set()
                for worker in workers:
                    worker.join(timeout=60)
                assert counts["done"] >= kill_after, f"round {round_}: the workers stopped early: {counts}"
                interrupted += counts["interrupted"]
                remove_derived_config(server)
                server = start(config, tmp_path)
                check_every_prompt_has_one_default(server, prompt_ids)
            assert interrupted > 0, "no request was in flight when the server was killed"
        finally:
            server.stop()
            remove_derived_config(server)
