"""Per-request cost of establishing identity: ogx-tenancy's middleware beside OGX 1.5's own.

    python bench/identity.py            # 5 rounds x 20,000 requests per case
    python bench/identity.py --quick    # a smoke run

Each case drives one ASGI middleware directly with a trivial inner app, on the same request (same
headers, same socket peer), interleaved round by round so every case sees the same machine noise:

* ``ogx-upstream-header``: OGX 1.5's ``AuthenticationMiddleware`` with the ``upstream_header``
  provider (principal, teams and tenant headers), given a one-route app so its route lookup hits at
  once (its best case: a real OGX app has a hundred routes to scan).
* ``host+fixed-identity``: ``IdentityMiddleware`` with a plugin that returns a ready Identity — the
  host's own cost, for reference.
* ``host+header_identity``: ogx-tenancy's ``IdentityMiddleware`` with the test plugin
  ``header_identity`` (plain headers, no checks) on the same headers.
* ``ogx-upstream-header+cidr``: OGX's provider with ``trusted_proxy_cidrs``, on MaaS headers.
* ``host+maas``: ``IdentityMiddleware`` with the maas plugin doing the CIDR check, the HMAC-SHA256
  signature check and full value validation, on the same MaaS headers (plus the signature headers,
  which OGX ignores).

Then a breakdown of the maas case by component (plugin hook alone, core pieces). Prints a table,
then one JSON object per line (``"bench": "identity"``) for machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import ogx_tenancy_test_header_identity
from fastapi import FastAPI
from ogx.core.datatypes import AuthenticationConfig, UpstreamHeaderAuthConfig
from ogx.core.server.auth import AuthenticationMiddleware

import ogx_tenancy_maas.plugin as maas_plugin
from ogx_tenancy import Identity, IncomingRequest, RequestHeaders, acting_as, hookimpl
from ogx_tenancy.adapter.middleware import IdentityMiddleware
from ogx_tenancy.host import Tenancy
from ogx_tenancy.manager import PluginManager
from ogx_tenancy.merge import merge_identities
from ogx_tenancy_maas import MaasSettings, sign

HMAC_KEY = "bench-secret-" + "k" * 40
PATH = "/v1/chat/completions"
COMMON = [
    (b"host", b"ogx.example.internal"),
    (b"user-agent", b"OpenAI/Python 1.99.0"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"content-length", b"312"),
    (b"authorization", b"Bearer sk-not-checked-here"),
    (b"x-request-id", b"6f1c0f0e-5b7a-4c1e-9d55-3f0a8c7e2b11"),
]
PLAIN_IDENTITY = [(b"x-test-user", b"alice"), (b"x-test-teams", b"team-a,team-b"), (b"x-test-tenant", b"acme")]
MAAS_IDENTITY = {
    "X-MaaS-Username": "alice@example.com",
    "X-MaaS-Group": '["system:authenticated","team-a","team-b"]',
    "X-MaaS-Subscription": "acme",
}
GATEWAY_PEER = ("10.1.2.3", 40412)
OGX_REFERENCE_US = 8.0  # OGX's upstream_header per request when the 12 µs target was set (issue 3)


async def _inner_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    return None


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


def _ogx_app() -> FastAPI:
    app = FastAPI()

    @app.post(PATH)
    async def chat() -> dict[str, str]:  # only its route entry matters
        return {}

    return app


def _scope(headers: list[tuple[bytes, bytes]], app: Any) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": PATH, "headers": headers, "client": GATEWAY_PEER, "app": app}


class _FixedIdentity:
    """A plugin that does no work at all: what remains is the host's own cost."""

    identity = Identity("alice", {"teams": ("team-a", "team-b")}, "acme")

    @hookimpl
    def ogx_tenancy_identity(self, request: IncomingRequest) -> Identity:
        return self.identity


def _host(plugin: Any, name: str, block: dict[str, Any] | None) -> Tenancy:
    manager = PluginManager()
    manager.register(plugin, name)
    return Tenancy.from_config({"plugins": {name: block}}, manager=manager)


def build_cases() -> dict[str, tuple[Any, dict[str, Any]]]:
    """name -> (ASGI middleware, scope template)."""
    ogx_app = _ogx_app()
    plain_headers = [*COMMON, *PLAIN_IDENTITY]
    maas_headers = [*COMMON, *((k.lower().encode(), v.encode()) for k, v in MAAS_IDENTITY.items())]
    # a long replay window: the signature is made once, before the measurement starts
    maas_headers += [
        (k.lower().encode(), v.encode()) for k, v in sign(MAAS_IDENTITY, HMAC_KEY).items()
    ]
    never_public: Callable[[str, str], bool] = lambda method, path: False  # noqa: E731

    ogx_plain = AuthenticationMiddleware(
        _inner_app,
        AuthenticationConfig(
            provider_config=UpstreamHeaderAuthConfig(
                principal_header="x-test-user",
                attribute_headers={"x-test-teams": "teams"},
                tenant_header="x-test-tenant",
            )
        ),
    )
    ogx_cidr = AuthenticationMiddleware(
        _inner_app,
        AuthenticationConfig(
            provider_config=UpstreamHeaderAuthConfig(
                principal_header="X-MaaS-Username",
                attribute_headers={"X-MaaS-Group": "teams", "X-MaaS-Subscription": "namespaces"},
                trusted_proxy_cidrs=["10.0.0.0/8"],
            )
        ),
    )
    host_plain = IdentityMiddleware(
        _inner_app, _host(ogx_tenancy_test_header_identity, "header_identity", {}), never_public
    )
    host_maas = IdentityMiddleware(
        _inner_app,
        _host(
            maas_plugin,
            "maas",
            {"trusted_proxy_cidrs": ["10.0.0.0/8"], "hmac_key": HMAC_KEY, "max_clock_skew_seconds": 3600},
        ),
        never_public,
    )
    host_fixed = IdentityMiddleware(_inner_app, _host(_FixedIdentity(), "fixed", None), never_public)
    return {
        "host+fixed-identity": (host_fixed, _scope(plain_headers, ogx_app)),
        "ogx-upstream-header": (ogx_plain, _scope(plain_headers, ogx_app)),
        "host+header_identity": (host_plain, _scope(plain_headers, ogx_app)),
        "ogx-upstream-header+cidr": (ogx_cidr, _scope(maas_headers, ogx_app)),
        "host+maas": (host_maas, _scope(maas_headers, ogx_app)),
    }


async def _check(name: str, middleware: Any, template: dict[str, Any]) -> None:
    """Fail loudly unless the case really identifies the caller (a benchmark of a refusal is worthless)."""
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(principal=scope.get("principal"), attributes=scope.get("user_attributes"))

    inner = middleware.app
    middleware.app = app
    try:
        await middleware(dict(template), _receive, _send)
    finally:
        middleware.app = inner
    if seen.get("principal") not in ("alice", "alice@example.com"):
        raise SystemExit(f"bench case {name} did not identify the caller: {seen}")


async def measure(cases: dict[str, tuple[Any, dict[str, Any]]], rounds: int, per_round: int) -> dict[str, list[float]]:
    """Per-request durations in µs, interleaving cases round by round."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for name, (middleware, template) in cases.items():
        await _check(name, middleware, template)
        for _ in range(2000):  # warm caches
            await middleware(dict(template), _receive, _send)
    for _ in range(rounds):
        for name, (middleware, template) in cases.items():
            out = samples[name]
            for _ in range(per_round):
                scope = dict(template)
                start = clock()
                await middleware(scope, _receive, _send)
                out.append((clock() - start) / 1000)
    return samples


def breakdown(iterations: int) -> dict[str, float]:
    """Median µs per call of each piece of the host+maas path, measured alone."""
    settings = MaasSettings(trusted_proxy_cidrs=["10.0.0.0/8"], hmac_key=HMAC_KEY, max_clock_skew_seconds=3600)
    raw = [*COMMON, *((k.lower().encode(), v.encode()) for k, v in MAAS_IDENTITY.items())]
    raw += [(k.lower().encode(), v.encode()) for k, v in sign(MAAS_IDENTITY, HMAC_KEY).items()]
    request = IncomingRequest("POST", PATH, GATEWAY_PEER, RequestHeaders(raw))
    identity = maas_plugin.ogx_tenancy_identity(request, settings)
    assert identity is not None
    attributes = identity.attributes_as_lists()

    def fresh_request_identity() -> None:
        maas_plugin.ogx_tenancy_identity(IncomingRequest("POST", PATH, GATEWAY_PEER, RequestHeaders(raw)), settings)

    def headers_index() -> None:
        RequestHeaders(raw).get_all_raw("x-maas-username")

    def acting() -> None:
        with acting_as(identity):
            pass

    pieces: dict[str, Callable[[], Any]] = {
        "maas hook (RequestHeaders built, indexed, CIDR+HMAC+values)": fresh_request_identity,
        "  RequestHeaders(...) + first lookup": headers_index,
        "  Identity(...) (__post_init__)": lambda: Identity("alice", attributes, "acme"),
        "merge_identities (one contribution)": lambda: merge_identities([("maas", identity)]),
        "Identity.attributes_as_lists()": identity.attributes_as_lists,
        "acting_as(identity) enter+exit": acting,
    }
    # medians of single calls, like the table above: robust to a shared machine's preemptions
    clock = time.perf_counter_ns
    results = {}
    for name, function in pieces.items():
        for _ in range(1000):
            function()
        samples = []
        for _ in range(iterations):
            start = clock()
            function()
            samples.append(clock() - start)
        results[name] = statistics.median(samples) / 1000
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few iterations (a smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--per-round", type=int, default=20_000, help="requests per case per round (default 20000)")
    args = parser.parse_args()
    rounds, per_round = (2, 2000) if args.quick else (args.rounds, args.per_round)

    samples = asyncio.run(measure(build_cases(), rounds, per_round))
    stats = {
        name: {"median_us": statistics.median(values), "mean_us": statistics.fmean(values), "n": len(values)}
        for name, values in samples.items()
    }
    ratio_simple = stats["host+header_identity"]["median_us"] / stats["ogx-upstream-header"]["median_us"]
    ratio_maas = stats["host+maas"]["median_us"] / stats["ogx-upstream-header+cidr"]["median_us"]
    print(f"identity extraction per request ({rounds} rounds x {per_round} requests per case, µs)")
    print(f"{'case':<28}{'median':>10}{'mean':>10}")
    for name, row in stats.items():
        print(f"{name:<28}{row['median_us']:>10.2f}{row['mean_us']:>10.2f}")
    print(f"host+header_identity / ogx-upstream-header (median): {ratio_simple:.2f}x  (target <= 1.5x)")
    ratio_maas_plain = stats["host+maas"]["median_us"] / stats["ogx-upstream-header"]["median_us"]
    print(
        f"host+maas: {stats['host+maas']['median_us']:.2f} µs median (target <= 12 µs); "
        f"{ratio_maas:.2f}x ogx-upstream-header+cidr, which does no signature check"
    )
    # The 12 µs target was set beside OGX's ~8 µs on a quiet machine; on a loaded one compare ratios.
    print(
        f"host+maas / ogx-upstream-header: {ratio_maas_plain:.2f}x, i.e. {OGX_REFERENCE_US * ratio_maas_plain:.1f} µs "
        f"where OGX takes the {OGX_REFERENCE_US:.0f} µs it took when the target was set"
    )
    pieces = breakdown(2000 if args.quick else 50_000)
    print("\nwhere host+maas spends its time (median µs per call, each piece measured alone)")
    for name, micros in pieces.items():
        print(f"{name:<62}{micros:>8.2f}")
    for name, row in stats.items():
        print(json.dumps({"bench": "identity", "case": name, **{k: round(v, 3) for k, v in row.items()}}))
    print(json.dumps({"bench": "identity", "case": "ratio", "host_simple_over_ogx": round(ratio_simple, 3),
                      "maas_over_ogx_cidr": round(ratio_maas, 3), "maas_over_ogx": round(ratio_maas_plain, 3)}))
    for name, micros in pieces.items():
        print(json.dumps({"bench": "identity", "component": name.strip(), "median_us": round(micros, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
