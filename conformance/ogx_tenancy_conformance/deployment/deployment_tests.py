"""The deployment-level suite: black-box HTTP checks of a running OGX with several identities.

Run by ``ogx-tenancy-conformance deployment --base-url URL --identities FILE``. Every resource the
suite creates is recorded with its owner and deleted at the end (``deployment.cleanup`` checks it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from ..capabilities import capability
from ..guarantees import (
    BAD_INPUT_REFUSED,
    CLEANUP,
    DEPLOYMENT_ISOLATION,
    FAIRNESS_HEADERS,
    NO_CONCURRENT_LEAK,
    NO_ECHO,
    NO_UNTRUSTED_IDENTITY,
    TENANT_ISOLATION,
    Clause,
)
from ..marks import conformance_test
from .config import IdentitiesFile, load_identities

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
NOT_SERVED = (404, 405, 501)
FINISHED_BATCH = ("completed", "failed", "cancelled", "cancelling", "expired")


@dataclass
class Created:
    """A resource the suite created: who owns it and how to delete it."""

    kind: str
    id: str
    owner: str
    delete_path: str | None
    delete_method: str = "DELETE"


@dataclass
class Deployment:
    """The deployment under test and everything the suite created in it."""

    base_url: str
    file: IdentitiesFile
    created: list[Created] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        self.clients = {
            name: httpx.Client(base_url=self.base_url, headers=spec.request_headers(), timeout=TIMEOUT)
            for name, spec in self.file.identities.items()
        }

    def as_(self, name: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.clients[name].request(method, path, **kwargs)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def remember(self, item: Created) -> None:
        self.created.append(item)

    def cleanup(self) -> list[str]:
        """Delete what was created, newest first, as its owner; return what could not be deleted."""
        left = []
        for item in reversed(self.created):
            if item.delete_path is None:
                continue
            try:
                if item.kind == "batches" and self._batch_finished(item):
                    continue  # a finished batch cannot be cancelled, and batches cannot be deleted
                response = self.as_(item.owner, item.delete_method, item.delete_path)
            except httpx.HTTPError as e:
                left.append(
                    f"{item.kind} {item.id} (owner {item.owner}): {item.delete_method} {item.delete_path} "
                    f"failed without an HTTP answer ({type(e).__name__}: {e})"
                )
                continue
            if response.status_code >= 300 and response.status_code != 404:
                left.append(f"{item.kind} {item.id} (owner {item.owner}): {_brief(response)}")
        self.created = [c for c in self.created if c.delete_path is None]
        return left

    def _batch_finished(self, item: Created) -> bool:
        response = self.as_(item.owner, "GET", f"/v1/batches/{item.id}")
        return response.status_code == 200 and response.json().get("status") in FINISHED_BATCH

    def clause_for(self, owner: str, other: str) -> Clause:
        return TENANT_ISOLATION if self.file.across_tenants(owner, other) else DEPLOYMENT_ISOLATION


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    base_url = request.config.getoption("conformance_base_url", None)
    path = request.config.getoption("conformance_identities", None)
    if not base_url or not path:
        pytest.fail(
            "pass --conformance-base-url and --conformance-identities (or run `ogx-tenancy-conformance deployment`)",
            pytrace=False,
        )
    target = Deployment(base_url.rstrip("/"), load_identities(path))
    try:
        yield target
    finally:
        target.cleanup()
        target.close()


def _brief(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} {response.text[:200]!r}"


# -- resource kinds --------------------------------------------------------------------------


@dataclass
class Kind:
    """How to create, read, change, list and delete one kind of resource over HTTP."""

    name: str
    create: Callable[[Deployment, str], httpx.Response]
    id_of: Callable[[dict[str, Any]], str]
    reads: Callable[[str], list[tuple[str, str, dict[str, Any]]]]
    writes: Callable[[str], list[tuple[str, str, dict[str, Any]]]]
    list_path: str | None
    delete: Callable[[str], tuple[str, str] | None]
    snapshot: Callable[[dict[str, Any]], Any] = lambda body: None


def _create_prompt(d: Deployment, owner: str) -> httpx.Response:
    return d.as_(
        owner,
        "POST",
        "/v1/prompts",
        json={"prompt": f"conformance {d.run_id} {owner} {{{{ who }}}}", "variables": ["who"]},
    )


def _create_file(
    d: Deployment, owner: str, purpose: str = "assistants", content: bytes | None = None
) -> httpx.Response:
    content = content or f"conformance {d.run_id} {owner}\n".encode()
    return d.as_(
        owner,
        "POST",
        "/v1/files",
        data={"purpose": purpose},
        files={"file": (f"conformance-{d.run_id}-{owner}.jsonl", content, "application/jsonl")},
    )


def _create_batch(d: Deployment, owner: str, idempotency_key: str | None = None) -> httpx.Response:
    line = {
        "custom_id": "c1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": d.file.model or "conformance-model", "messages": [{"role": "user", "content": "hi"}]},
    }
    upload = _create_file(d, owner, "batch", (json.dumps(line) + "\n").encode())
    if upload.status_code >= 300:
        return upload
    file_id = upload.json()["id"]
    d.remember(Created("file", file_id, owner, f"/v1/files/{file_id}"))
    body: dict[str, Any] = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    return d.as_(owner, "POST", "/v1/batches", json=body)


KINDS: dict[str, Kind] = {
    "prompts": Kind(
        "prompts",
        _create_prompt,
        lambda b: b["prompt_id"],
        reads=lambda i: [("GET", f"/v1/prompts/{i}", {}), ("GET", f"/v1/prompts/{i}/versions", {})],
        writes=lambda i: [
            ("PUT", f"/v1/prompts/{i}", {"json": {"prompt": "hijacked {{ who }}", "version": 1, "variables": ["who"]}}),
            ("PUT", f"/v1/prompts/{i}/set-default-version", {"json": {"version": 1}}),
            ("DELETE", f"/v1/prompts/{i}", {}),
        ],
        list_path="/v1/prompts",
        delete=lambda i: ("DELETE", f"/v1/prompts/{i}"),
        snapshot=lambda b: (b.get("version"), b.get("prompt")),
    ),
    "files": Kind(
        "files",
        _create_file,
        lambda b: b["id"],
        reads=lambda i: [("GET", f"/v1/files/{i}", {}), ("GET", f"/v1/files/{i}/content", {})],
        writes=lambda i: [("DELETE", f"/v1/files/{i}", {})],
        list_path="/v1/files",
        delete=lambda i: ("DELETE", f"/v1/files/{i}"),
        snapshot=lambda b: b.get("filename"),
    ),
    "conversations": Kind(
        "conversations",
        lambda d, o: d.as_(o, "POST", "/v1/conversations", json={"metadata": {"suite": d.run_id}}),
        lambda b: b["id"],
        reads=lambda i: [("GET", f"/v1/conversations/{i}", {}), ("GET", f"/v1/conversations/{i}/items", {})],
        writes=lambda i: [
            ("POST", f"/v1/conversations/{i}", {"json": {"metadata": {"hijacked": "yes"}}}),
            (
                "POST",
                f"/v1/conversations/{i}/items",
                {"json": {"items": [{"type": "message", "role": "user", "content": "hijacked"}]}},
            ),
            ("DELETE", f"/v1/conversations/{i}", {}),
        ],
        list_path=None,
        delete=lambda i: ("DELETE", f"/v1/conversations/{i}"),
        snapshot=lambda b: b.get("metadata"),
    ),
    "vector_stores": Kind(
        "vector_stores",
        lambda d, o: d.as_(o, "POST", "/v1/vector_stores", json={"name": f"conformance-{d.run_id}-{o}"}),
        lambda b: b["id"],
        reads=lambda i: [("GET", f"/v1/vector_stores/{i}", {}), ("GET", f"/v1/vector_stores/{i}/files", {})],
        writes=lambda i: [
            ("POST", f"/v1/vector_stores/{i}", {"json": {"name": "hijacked"}}),
            ("DELETE", f"/v1/vector_stores/{i}", {}),
        ],
        list_path="/v1/vector_stores",
        delete=lambda i: ("DELETE", f"/v1/vector_stores/{i}"),
        snapshot=lambda b: b.get("name"),
    ),
    "batches": Kind(
        "batches",
        lambda d, o: _create_batch(d, o),
        lambda b: b["id"],
        reads=lambda i: [("GET", f"/v1/batches/{i}", {})],
        writes=lambda i: [("POST", f"/v1/batches/{i}/cancel", {})],
        list_path="/v1/batches",
        delete=lambda i: ("POST", f"/v1/batches/{i}/cancel"),
    ),
    "responses": Kind(
        "responses",
        lambda d, o: d.as_(
            o, "POST", "/v1/responses", json={"model": d.file.model, "input": f"conformance {d.run_id}", "store": True}
        ),
        lambda b: b["id"],
        reads=lambda i: [("GET", f"/v1/responses/{i}", {}), ("GET", f"/v1/responses/{i}/input_items", {})],
        writes=lambda i: [("DELETE", f"/v1/responses/{i}", {})],
        list_path="/v1/responses",
        delete=lambda i: ("DELETE", f"/v1/responses/{i}"),
    ),
}


def _listed(d: Deployment, who: str, kind: Kind, resource_id: str) -> bool | None:
    """Whether ``who``'s listing shows the resource (following pages); None when listing is refused."""
    if kind.list_path is None:
        return None
    after = None
    for _ in range(200):
        params = {"limit": 100, **({"after": after} if after else {})}
        response = d.as_(who, "GET", kind.list_path, params=params)
        if response.status_code >= 300:
            return None
        body = response.json()
        items = body.get("data", []) if isinstance(body, dict) else []
        ids = [kind.id_of(item) for item in items if isinstance(item, dict)]
        if resource_id in ids:
            return True
        if not (isinstance(body, dict) and body.get("has_more")) or not ids:
            return False
        after = ids[-1]
    return False


def check_isolation(d: Deployment, kind: Kind) -> None:
    """Each identity creates one resource; no identity sharing nothing with it can list, read, change
    or delete it; the owner still reads it unchanged afterwards."""
    owners = sorted({owner for owner, _ in d.file.strangers()})
    made: dict[str, tuple[str, Any]] = {}
    for owner in owners:
        response = kind.create(d, owner)
        if response.status_code in NOT_SERVED:
            pytest.skip(f"the deployment does not serve {kind.name} (create: {_brief(response)})")
        if response.status_code >= 300:
            pytest.skip(f"could not create {kind.name} as {owner!r}: {_brief(response)}")
        resource_id = kind.id_of(response.json())
        delete = kind.delete(resource_id)
        d.remember(
            Created(kind.name, resource_id, owner, delete[1] if delete else None, delete[0] if delete else "DELETE")
        )
        own = d.as_(owner, *kind.reads(resource_id)[0][:2])
        DEPLOYMENT_ISOLATION.require(
            own.status_code == 200, f"{owner!r} cannot read their own {kind.name} {resource_id}: {_brief(own)}"
        )
        made[owner] = (resource_id, kind.snapshot(own.json()))
    for owner, other in d.file.strangers():
        resource_id, _ = made[owner]
        clause = d.clause_for(owner, other)
        shown = _listed(d, other, kind, resource_id)
        clause.require(shown is not True, f"{other!r} lists {owner!r}'s {kind.name} {resource_id} (they share no team)")
        for method, path, kwargs in [*kind.reads(resource_id), *kind.writes(resource_id)]:
            response = d.as_(other, method, path, **kwargs)
            clause.require(
                response.status_code >= 400,
                f"{other!r} ({'other tenant' if clause is TENANT_ISOLATION else 'no shared team'}) did {method} {path} "
                f"on {owner!r}'s {kind.name}: {_brief(response)}",
            )
            DEPLOYMENT_ISOLATION.require(
                response.status_code < 500, f"{other!r} doing {method} {path} got a server error: {_brief(response)}"
            )
    for owner, (resource_id, before) in made.items():
        again = d.as_(owner, *kind.reads(resource_id)[0][:2])
        DEPLOYMENT_ISOLATION.require(
            again.status_code == 200,
            f"{owner!r}'s {kind.name} {resource_id} is gone after others tried it: {_brief(again)}",
        )
        after = kind.snapshot(again.json())
        DEPLOYMENT_ISOLATION.require(
            after == before, f"{owner!r}'s {kind.name} {resource_id} was changed by others: {before!r} -> {after!r}"
        )


def _probe_path(d: Deployment) -> str:
    for path in ("/v1/prompts", "/v1/files", "/v1/models"):
        if d.as_(d.file.first(), "GET", path).status_code == 200:
            return path
    pytest.fail(
        f"{d.file.first()!r} gets no 200 from /v1/prompts, /v1/files or /v1/models: check the identities "
        "file and the deployment",
        pytrace=False,
    )


class TestDeployment:
    """The checks, in order; ``deployment.cleanup`` runs last."""

    conformance_family = "deployment"

    @conformance_test("deployment.identities-accepted", DEPLOYMENT_ISOLATION)
    def test_identities_accepted(self, deployment: Deployment) -> None:
        """Every identity of the file is accepted by the deployment (so the other checks mean something)."""
        path = _probe_path(deployment)
        for name in deployment.file.identities:
            response = deployment.as_(name, "GET", path)
            DEPLOYMENT_ISOLATION.require(response.status_code == 200, f"{name!r} GET {path}: {_brief(response)}")

    @conformance_test("deployment.no-identity-refused", NO_UNTRUSTED_IDENTITY)
    def test_no_identity_refused(self, deployment: Deployment) -> None:
        """A request with no identity at all is refused with 401/403."""
        path = _probe_path(deployment)
        response = httpx.get(f"{deployment.base_url}{path}", timeout=TIMEOUT)
        NO_UNTRUSTED_IDENTITY.require(
            response.status_code in (401, 403), f"GET {path} without identity: {_brief(response)}"
        )

    @conformance_test("deployment.untrusted-client-refused", NO_UNTRUSTED_IDENTITY)
    def test_untrusted_client_refused(self, deployment: Deployment) -> None:
        """The first identity's headers sent by an untrusted client (as the file describes it, also
        with X-Forwarded-For naming the gateway) are refused."""
        untrusted = deployment.file.untrusted
        NO_UNTRUSTED_IDENTITY.require(
            untrusted is not None,
            "the identities file does not say how an untrusted client reaches the server (untrusted: "
            "source_address, base_url or headers): a deployment that believes identity headers must tell the "
            "gateway from a client, and this check has no escape hatch",
        )
        path = _probe_path(deployment)
        name = deployment.file.first()
        headers = {k.lower(): v for k, v in deployment.file.identities[name].request_headers().items()}
        headers |= {k.lower(): v for k, v in untrusted.headers.items()}
        transport = httpx.HTTPTransport(local_address=untrusted.source_address) if untrusted.source_address else None
        base = (untrusted.base_url or deployment.base_url).rstrip("/")
        with httpx.Client(base_url=base, transport=transport, timeout=TIMEOUT) as client:
            for label, extra in (
                ("as is", {}),
                ("with X-Forwarded-For: 127.0.0.1", {"x-forwarded-for": "127.0.0.1", "x-real-ip": "127.0.0.1"}),
            ):
                for method, kwargs in (("GET", {}), ("POST", {"json": {"prompt": "untrusted", "variables": []}})):
                    response = client.request(method, path, headers={**headers, **extra}, **kwargs)
                    if response.status_code < 300 and method == "POST" and path == "/v1/prompts":
                        created = response.json().get("prompt_id")
                        deployment.remember(Created("prompts", created, name, f"/v1/prompts/{created}"))
                    NO_UNTRUSTED_IDENTITY.require(
                        400 <= response.status_code < 500,
                        f"{method} {path} from an untrusted client ({label}) carrying {name!r}'s identity: "
                        f"{_brief(response)}",
                    )

    @conformance_test("deployment.duplicated-identity-header-refused", NO_UNTRUSTED_IDENTITY)
    def test_duplicated_identity_header_refused(self, deployment: Deployment) -> None:
        """An identity header sent twice (the owner's and another identity's value) is refused with a 4xx."""
        path = _probe_path(deployment)
        owner, other = deployment.file.strangers()[0]
        mine = deployment.file.identities[owner].request_headers()
        theirs = {k.lower(): v for k, v in deployment.file.identities[other].request_headers().items()}
        for header in mine:
            for label, pairs in (
                ("other's value last", [*mine.items(), (header, theirs.get(header.lower(), "mallory"))]),
                ("other's value first", [(header, theirs.get(header.lower(), "mallory")), *mine.items()]),
            ):
                response = httpx.get(f"{deployment.base_url}{path}", headers=pairs, timeout=TIMEOUT)
                NO_UNTRUSTED_IDENTITY.require(
                    400 <= response.status_code < 500,
                    f"GET {path} with {header!r} sent twice ({label}): {_brief(response)}",
                )

    @conformance_test("deployment.bad-identity-values-not-echoed", NO_ECHO)
    def test_bad_identity_values_not_echoed(self, deployment: Deployment) -> None:
        """Malformed values in each identity header (unterminated JSON, a JSON object, an over-long
        value) get an answer below 500 that does not echo the value back."""
        path = _probe_path(deployment)
        name = deployment.file.first()
        headers = deployment.file.identities[name].request_headers()
        for header in headers:
            marker = f"echo{uuid.uuid4().hex[:12]}"
            for label, value in (
                ("unterminated JSON list", f'["{marker}'),
                ("JSON object", f'{{"{marker}": 1}}'),
                ("over-long value", marker * 64),
            ):
                response = httpx.get(
                    f"{deployment.base_url}{path}", headers={**headers, header: value}, timeout=TIMEOUT
                )
                BAD_INPUT_REFUSED.require(
                    response.status_code < 500, f"GET {path} with a {label} in {header!r}: {_brief(response)}"
                )
                NO_ECHO.require(
                    marker not in response.text and marker not in str(response.headers),
                    f"GET {path} with a {label} in {header!r}: the answer echoes the value ({_brief(response)})",
                )

    @conformance_test("deployment.prompts-isolated", DEPLOYMENT_ISOLATION)
    def test_prompts_isolated(self, deployment: Deployment) -> None:
        """Prompts: strangers cannot list, read, add a version to, set the default of, or delete another's prompt."""
        check_isolation(deployment, KINDS["prompts"])

    @conformance_test("deployment.files-isolated", DEPLOYMENT_ISOLATION)
    def test_files_isolated(self, deployment: Deployment) -> None:
        """Files: strangers cannot list, read, download or delete another's file."""
        check_isolation(deployment, KINDS["files"])

    @conformance_test("deployment.conversations-isolated", DEPLOYMENT_ISOLATION)
    def test_conversations_isolated(self, deployment: Deployment) -> None:
        """Conversations: strangers cannot read, change, add items to or delete another's conversation."""
        check_isolation(deployment, KINDS["conversations"])

    @conformance_test("deployment.vector-stores-isolated", DEPLOYMENT_ISOLATION)
    def test_vector_stores_isolated(self, deployment: Deployment) -> None:
        """Vector stores: strangers cannot list, read, rename or delete another's vector store."""
        check_isolation(deployment, KINDS["vector_stores"])

    @conformance_test("deployment.batches-isolated", DEPLOYMENT_ISOLATION)
    def test_batches_isolated(self, deployment: Deployment) -> None:
        """Batches: strangers cannot list, read or cancel another's batch."""
        check_isolation(deployment, KINDS["batches"])

    @conformance_test("deployment.batch-idempotency-per-caller", DEPLOYMENT_ISOLATION)
    def test_batch_idempotency_per_caller(self, deployment: Deployment) -> None:
        """Two strangers using one idempotency key each get their own batch (no 500, no oracle); a
        retry by the same caller returns the same batch."""
        owner, other = deployment.file.strangers()[0]
        key = f"conformance-{deployment.run_id}"
        first = _create_batch(deployment, owner, key)
        if first.status_code in NOT_SERVED:
            pytest.skip(f"the deployment does not serve batches ({_brief(first)})")
        if first.status_code >= 300:
            pytest.skip(f"could not create a batch as {owner!r}: {_brief(first)}")
        batch_id = first.json()["id"]
        deployment.remember(Created("batches", batch_id, owner, f"/v1/batches/{batch_id}/cancel", "POST"))
        theirs = _create_batch(deployment, other, key)
        DEPLOYMENT_ISOLATION.require(
            theirs.status_code < 300, f"{other!r} reusing {owner!r}'s idempotency key: {_brief(theirs)}"
        )
        their_id = theirs.json()["id"]
        deployment.remember(Created("batches", their_id, other, f"/v1/batches/{their_id}/cancel", "POST"))
        deployment.clause_for(owner, other).require(
            their_id != batch_id, f"{other!r} reusing {owner!r}'s idempotency key got {owner!r}'s batch {batch_id}"
        )

    @conformance_test("deployment.responses-isolated", DEPLOYMENT_ISOLATION, requires="inference")
    def test_responses_isolated(self, deployment: Deployment) -> None:
        """Responses: strangers cannot list, read or delete another's stored response."""
        if not deployment.file.model:
            pytest.skip(capability("inference").skip_reason())
        check_isolation(deployment, KINDS["responses"])

    @conformance_test("deployment.team-sharing", DEPLOYMENT_ISOLATION, requires="team_sharing")
    def test_team_sharing(self, deployment: Deployment) -> None:
        """Identities of one team can read each other's prompts (the policy shares within teams)."""
        if not deployment.file.expect_team_sharing or not deployment.file.teams:
            pytest.skip(capability("team_sharing").skip_reason())
        for team in deployment.file.teams:
            owner, *mates = team
            created = _create_prompt(deployment, owner)
            if created.status_code in NOT_SERVED:
                pytest.skip(f"the deployment does not serve prompts ({_brief(created)})")
            prompt_id = created.json()["prompt_id"]
            deployment.remember(Created("prompts", prompt_id, owner, f"/v1/prompts/{prompt_id}"))
            for mate in mates:
                response = deployment.as_(mate, "GET", f"/v1/prompts/{prompt_id}")
                DEPLOYMENT_ISOLATION.require(
                    response.status_code == 200, f"teammate {mate!r} cannot read {owner!r}'s prompt: {_brief(response)}"
                )

    @conformance_test("deployment.connectors", DEPLOYMENT_ISOLATION, requires="connectors")
    def test_connectors(self, deployment: Deployment) -> None:
        """Each identity sees exactly the connectors the file says it may, and none it may not."""
        if not deployment.file.connectors:
            pytest.skip(capability("connectors").skip_reason())
        for name, expected in deployment.file.connectors.items():
            response = deployment.as_(name, "GET", "/v1alpha/admin/connectors")
            if response.status_code in NOT_SERVED:
                pytest.skip(f"the deployment does not serve connectors ({_brief(response)})")
            DEPLOYMENT_ISOLATION.require(
                response.status_code == 200, f"{name!r} listing connectors: {_brief(response)}"
            )
            ids = {c.get("connector_id") for c in response.json().get("data", [])}
            missing, leaked = set(expected.visible) - ids, set(expected.hidden) & ids
            DEPLOYMENT_ISOLATION.require(
                not missing and not leaked,
                f"{name!r} connectors: missing {sorted(missing)}, should not see {sorted(leaked)}",
            )
            for hidden in expected.hidden:
                got = deployment.as_(name, "GET", f"/v1alpha/admin/connectors/{hidden}")
                DEPLOYMENT_ISOLATION.require(
                    got.status_code >= 400, f"{name!r} can read connector {hidden!r}: {_brief(got)}"
                )

    @conformance_test("deployment.concurrent-requests-isolated", NO_CONCURRENT_LEAK)
    def test_concurrent_requests_isolated(self, deployment: Deployment) -> None:
        """Many concurrent requests, alternating identities, each list only what their own identity may
        see: no identity leaks from one request into another."""
        kind = KINDS["prompts"]
        owned: dict[str, str] = {}
        for name in deployment.file.identities:
            created = kind.create(deployment, name)
            if created.status_code in NOT_SERVED:
                kind = KINDS["files"]
                created = kind.create(deployment, name)
            if created.status_code >= 300:
                pytest.skip(f"cannot create prompts or files to check with: {_brief(created)}")
            owned[name] = kind.id_of(created.json())
            target = kind.delete(owned[name])
            deployment.remember(Created(kind.name, owned[name], name, target[1] if target else None))
        names = list(deployment.file.identities)

        def one(index: int) -> tuple[str, set[str]]:
            name = names[index % len(names)]
            response = deployment.as_(name, "GET", kind.list_path or "", params={"limit": 100})
            items = response.json().get("data", []) if response.status_code == 200 else []
            return name, {kind.id_of(item) for item in items}

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(one, range(120)))
        for name, seen in results:
            NO_CONCURRENT_LEAK.require(
                owned[name] in seen, f"a concurrent listing by {name!r} misses their own {kind.name}"
            )
            foreign = sorted(o for o, rid in owned.items() if rid in seen and not deployment.file.share(name, o))
            NO_CONCURRENT_LEAK.require(not foreign, f"a concurrent listing by {name!r} shows {kind.name} of {foreign}")

    @conformance_test("deployment.fairness-headers", FAIRNESS_HEADERS, requires="recording_upstream")
    def test_fairness_headers(self, deployment: Deployment) -> None:
        """Each identity's chat completion reaches the recording upstream with the fairness headers, not
        the value the client tried to set; identities of different tenants get different values."""
        upstream = deployment.file.upstream
        if upstream is None or not deployment.file.model:
            pytest.skip(capability("recording_upstream").skip_reason())
        seen: dict[str, dict[str, str]] = {}
        for name in deployment.file.identities:
            marker = f"conformance-{deployment.run_id}-{name}"
            response = deployment.as_(
                name,
                "POST",
                "/v1/chat/completions",
                headers={h: "spoofed-by-client" for h in upstream.fairness_headers},
                json={"model": deployment.file.model, "messages": [{"role": "user", "content": marker}]},
            )
            FAIRNESS_HEADERS.require(response.status_code == 200, f"{name!r} chat completion: {_brief(response)}")
            records = httpx.get(upstream.records_url, timeout=TIMEOUT).json()
            mine = [r for r in records if marker in json.dumps(r.get("body"))]
            FAIRNESS_HEADERS.require(mine, f"the upstream recorded no request carrying {name!r}'s message")
            headers = [(k.lower(), v) for k, v in mine[-1]["headers"]]
            values = {}
            for wanted in upstream.fairness_headers:
                got = [v for k, v in headers if k == wanted.lower()]
                FAIRNESS_HEADERS.require(
                    len(got) == 1 and got[0] != "spoofed-by-client",
                    f"{name!r}'s call reached the upstream with {wanted}: {got}",
                )
                values[wanted] = got[0]
            seen[name] = values
        for a, b in deployment.file.strangers():
            if deployment.file.across_tenants(a, b):
                FAIRNESS_HEADERS.require(
                    seen[a] != seen[b], f"{a!r} and {b!r} (different tenants) share fairness headers {seen[a]}"
                )

    @conformance_test("deployment.cleanup", CLEANUP)
    def test_cleanup(self, deployment: Deployment) -> None:
        """Everything the suite created is deleted by its owner and is gone afterwards."""
        made = [c for c in deployment.created if c.delete_path and c.delete_method == "DELETE"]
        left = deployment.cleanup()
        CLEANUP.require(not left, "could not delete: " + "; ".join(left))
        for item in made:
            kind = KINDS.get(item.kind)
            if kind is None:
                continue
            response = deployment.as_(item.owner, *kind.reads(item.id)[0][:2])
            CLEANUP.require(response.status_code == 404, f"{item.kind} {item.id} still there: {_brief(response)}")
