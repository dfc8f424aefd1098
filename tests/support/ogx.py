"""Start a real OGX server through `ogx-tenancy run` in a subprocess, and stop it.

Start-up of OGX takes 10-30 s on these machines, so tests share servers per module where they can.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

STARTUP_TIMEOUT_S = float(os.environ.get("OGX_TENANCY_TEST_STARTUP_TIMEOUT", "180"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_run_config(state_dir: Path, *, apis: list[str] | None = None) -> dict[str, Any]:
    """A minimal OGX 1.5 run config on SQLite in ``state_dir``: files (local) and prompts."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return {
        "version": 2,
        "distro_name": "ogx-tenancy-test",
        "apis": apis if apis is not None else ["files", "prompts"],
        "providers": {
            "files": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {
                        "storage_dir": str(state_dir / "files"),
                        "metadata_store": {"backend": "sql_default", "table_name": "files_metadata"},
                    },
                }
            ],
        },
        "storage": {
            "backends": {
                "kv_default": {"type": "kv_sqlite", "db_path": str(state_dir / "kv.db")},
                "sql_default": {"type": "sql_sqlite", "db_path": str(state_dir / "sql.db")},
            },
            "stores": {
                "metadata": {"backend": "kv_default", "namespace": "registry"},
                "inference": {"backend": "sql_default", "table_name": "inference_store"},
                "conversations": {"backend": "sql_default", "table_name": "conversations"},
                "prompts": {"backend": "sql_default", "table_name": "prompts"},
                "connectors": {"backend": "sql_default", "table_name": "connectors"},
            },
        },
        "server": {"port": 8321},
    }


class OgxServer:
    """`ogx-tenancy run CONFIG` (or plain `ogx run`) in a subprocess, logging to a file."""

    def __init__(
        self,
        config: Mapping[str, Any],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        plain_ogx: bool = False,
        host: str = "127.0.0.1",
    ):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = host
        self.config_path = workdir / "run.yaml"
        self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self.log_path = workdir / "server.log"
        self.env = {**os.environ, "OGX_DISABLE_VERSION_CHECK": "1", **(env or {})}
        self.plain_ogx = plain_ogx
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        if self.plain_ogx:
            ogx = str(Path(sys.executable).with_name("ogx"))
            return [ogx, "run", str(self.config_path), "--port", str(self.port), "--insecure"]
        return [
            sys.executable,
            "-m",
            "ogx_tenancy.cli",
            "run",
            str(self.config_path),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]

    def start(self) -> OgxServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.workdir,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"OGX exited with {self.process.returncode} during start-up:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"OGX did not become healthy in {STARTUP_TIMEOUT_S}s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> OgxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`ogx-tenancy ARGS` as a user would type it; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "ogx_tenancy.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
