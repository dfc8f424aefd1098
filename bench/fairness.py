"""Requests per second through OGX to a recording vLLM stand-in: our fairness provider beside OGX 1.5's
built-in, same run, same load.

    python bench/fairness.py            # 4 interleaved rounds x 1,000 requests per server
    python bench/fairness.py --quick    # a smoke run

Both servers are started by this script and serve the same recording upstream (tests/support/upstream.py,
in its own process):

* ``ogx-tenancy + remote::vllm-tenancy``: ``ogx-tenancy run`` with the test identity plugin
  ``header_identity`` and the ``vllm_fairness`` plugin (fairness id = first value of ``teams``, GIE
  header names), the provider loaded with ``module: ogx_tenancy_vllm_fairness``;
* ``ogx + remote::vllm``: plain ``ogx run`` with its ``upstream_header`` auth on the same headers and
  the built-in ``fairness_header_attribute: teams``.

The load: concurrency 32 over keep-alive connections, non-streaming chat completions, the callers
spread over 50 tenants. A tiny asyncio HTTP/1.1 client drives it so that the client costs next to
nothing. The servers are measured one after the other, in interleaved rounds (ABBA order, each
measurement starting when both servers are idle), after a warm-up; every
measured request must succeed and every upstream request must carry a fairness header. Prints both
rates and the ratio (target: ours >= 0.95 x the built-in), then one JSON object per line; writes
bench/results/fairness.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.ogx import OgxServer, base_run_config  # noqa: E402
from support.upstream import RecordingUpstream  # noqa: E402

CONCURRENCY = 32
TENANTS = 50
FAIRNESS_HEADER = "x-gateway-inference-fairness-id"
OURS, BUILTIN = "ogx-tenancy + remote::vllm-tenancy", "ogx + remote::vllm (fairness_header_attribute)"


def server_configs(upstream: RecordingUpstream, workdir: Path) -> dict[str, tuple[dict[str, Any], bool]]:
    """The two run configs: (config, plain_ogx) by case name."""
    ours = base_run_config(workdir / "ours", apis=["files", "inference", "models"])
    ours["providers"]["inference"] = [{
        "provider_id": "vllm", "provider_type": "remote::vllm-tenancy", "module": "ogx_tenancy_vllm_fairness",
        "config": {"base_url": upstream.openai_base_url},
    }]
    ours["tenancy"] = {"plugins": {"vllm_fairness": {"sources": [{"attribute": "teams", "select": "first"}]}}}

    builtin = base_run_config(workdir / "builtin", apis=["files", "inference", "models"])
    builtin["providers"]["inference"] = [{
        "provider_id": "vllm", "provider_type": "remote::vllm",
        "config": {"base_url": upstream.openai_base_url, "fairness_header_attribute": "teams"},
    }]
    builtin["server"]["auth"] = {"provider_config": {
        "type": "upstream_header", "principal_header": "x-test-user", "tenant_header": "x-test-tenant",
        "attribute_headers": {"x-test-teams": "teams"},
    }}
    for config in (ours, builtin):
        # no chat-completion store: its SQLite writes ("database is locked" under this load) would
        # measure SQLite, not the inference path
        del config["storage"]["stores"]["inference"]
    return {OURS: (ours, False), BUILTIN: (builtin, True)}


def process_cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process and all its descendants (uvicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    family, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in family]
        family.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in family)


def wait_until_idle(servers: Any, timeout_s: float = 30.0) -> None:
    """Wait until no server burns CPU (e.g. OGX still writing the last round's completions to its
    inference store), so that one server's leftovers never slow the other's measurement."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = sum(process_cpu_seconds(s.process.pid) for s in servers)
        time.sleep(0.5)
        if sum(process_cpu_seconds(s.process.pid) for s in servers) - before < 0.05:
            return


def request_bytes(port: int) -> list[bytes]:
    """One prepared HTTP/1.1 request per tenant (same body, the tenant's identity headers)."""
    body = json.dumps({"model": "vllm/test-chat", "messages": [{"role": "user", "content": "benchmark"}]}).encode()
    prepared = []
    for t in range(TENANTS):
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-test-user: user-{t}\r\nx-test-teams: team-{t:02d}\r\n"
            f"x-test-tenant: tenant-{t:02d}\r\n\r\n"
        )
        prepared.append(head.encode() + body)
    return prepared


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def drive(port: int, total: int) -> tuple[float, int]:
    """Send ``total`` requests at concurrency 32; returns (seconds, failures)."""
    prepared = request_bytes(port)
    counter = iter(range(total))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in counter:
                writer.write(prepared[n % TENANTS])
                if await read_response(reader) != 200:
                    failures += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - start, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 300 requests per server (a smoke run)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    parser.add_argument("--per-round", type=int, default=1000, help="requests per server per round (default 1000)")
    args = parser.parse_args()
    rounds, per_round, warmup = (1, 300, 100) if args.quick else (args.rounds, args.per_round, 300)

    results: dict[str, list[tuple[int, float]]] = {OURS: [], BUILTIN: []}
    cpu: dict[str, float] = {OURS: 0.0, BUILTIN: 0.0}
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as tmp, RecordingUpstream() as upstream:
        workdir = Path(tmp)
        servers: dict[str, OgxServer] = {}
        try:
            for name, (config, plain) in server_configs(upstream, workdir).items():
                env = None if plain else {"OGX_TENANCY_PLUGINS": "header_identity,vllm_fairness"}
                servers[name] = OgxServer(config, workdir / name.split()[0], env=env, plain_ogx=plain).start()
            for name, server in servers.items():
                upstream.clear()
                seconds, failures = asyncio.run(drive(server.port, warmup))
                sent = upstream.requests(path="/v1/chat/completions")
                with_header = sum(1 for r in sent if r.header(FAIRNESS_HEADER) is not None)
                if failures or len(sent) != warmup or with_header != warmup:
                    print(f"{name}: warm-up failed ({failures} errors, {len(sent)} upstream requests, "
                          f"{with_header} with {FAIRNESS_HEADER})\n{server.log_tail()}", file=sys.stderr)
                    return 1
            for round_number in range(rounds):
                # alternate which server goes first (ABBA...), so neither always follows the other
                order = list(servers.items()) if round_number % 2 == 0 else list(reversed(servers.items()))
                for name, server in order:
                    wait_until_idle(servers.values())
                    upstream.clear()
                    cpu_before = process_cpu_seconds(server.process.pid)
                    seconds, failures = asyncio.run(drive(server.port, per_round))
                    cpu[name] += process_cpu_seconds(server.process.pid) - cpu_before
                    if failures:
                        print(f"{name}: {failures} failed requests\n{server.log_tail()}", file=sys.stderr)
                        return 1
                    results[name].append((per_round, seconds))
        finally:
            for server in servers.values():
                server.stop()

    rates = {name: sum(n for n, _ in runs) / sum(s for _, s in runs) for name, runs in results.items()}
    ratio = rates[OURS] / rates[BUILTIN]
    # each round measures both servers back to back: the median of those paired ratios shrugs off a
    # round disturbed by other work on the machine
    median_paired = statistics.median(
        (n1 / s1) / (n2 / s2) for (n1, s1), (n2, s2) in zip(results[OURS], results[BUILTIN], strict=True)
    )
    print(f"\nnon-streaming chat, concurrency {CONCURRENCY}, {TENANTS} tenants, {rounds} x {per_round} requests each")
    for name, runs in results.items():
        per_round_rates = ", ".join(f"{n / s:.0f}" for n, s in runs)
        cpu_ms = 1000 * cpu[name] / sum(n for n, _ in runs)
        print(f"  {name:<48} {rates[name]:8.1f} req/s   server CPU {cpu_ms:5.2f} ms/request   "
              f"(rounds: {per_round_rates})")
    print(f"  ratio ours / built-in: {ratio:.3f}  (median of per-round ratios {median_paired:.3f}; target >= 0.95)")
    rows = [{"bench": "fairness", "case": name, "requests_per_second": round(rate, 1),
             "server_cpu_ms_per_request": round(1000 * cpu[name] / sum(n for n, _ in results[name]), 3),
             "rounds": [round(n / s, 1) for n, s in results[name]]} for name, rate in rates.items()]
    rows.append({"bench": "fairness", "case": "ratio", "ours_over_builtin": round(ratio, 3),
                 "median_round_ratio": round(median_paired, 3), "target": 0.95})
    for row in rows:
        print(json.dumps(row))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fairness.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
