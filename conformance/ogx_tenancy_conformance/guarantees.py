"""The clauses of the contract each test checks, and the five core guarantees among them.

A failing test names its clause in the first line of its message, e.g.::

    core guarantee broken [tenant-isolation] no row crosses tenants on any page or action:
    page 2 (limit=2) for 'alice' (tenant t-a) returned row 'r007' of tenant 't-b'

Core guarantees have no escape hatch: no capability skips them and the xfail file cannot expect
them to fail.
"""

from __future__ import annotations

from dataclasses import dataclass


class ContractViolation(AssertionError):
    """A plugin or deployment broke a clause of the contract. The message starts with the clause."""


@dataclass(frozen=True, slots=True)
class Clause:
    """One promise of the contract.

    :param key: a stable short name (used in reports and the JSON file).
    :param text: the promise, in one line.
    :param core: a core guarantee (no capability can skip it, no xfail can excuse it).
    """

    key: str
    text: str
    core: bool = False

    def label(self) -> str:
        kind = "core guarantee" if self.core else "contract"
        return f"{kind} broken [{self.key}] {self.text}"

    def require(self, condition: object, detail: str) -> None:
        """Raise ``ContractViolation`` naming this clause unless ``condition`` holds."""
        if not condition:
            raise ContractViolation(f"{self.label()}:\n{detail}")

    def fail(self, detail: str) -> ContractViolation:
        """The violation to raise for ``detail``."""
        return ContractViolation(f"{self.label()}:\n{detail}")


# -- the five core guarantees ------------------------------------------------------------------

TENANT_ISOLATION = Clause("tenant-isolation", "no row crosses tenants on any page or action", core=True)
NO_UNTRUSTED_IDENTITY = Clause(
    "no-untrusted-identity", "no identity from client-controlled or duplicated headers", core=True
)
ORDER_INDEPENDENCE = Clause("order-independence", "merged results do not depend on plugin order", core=True)
NO_CONCURRENT_LEAK = Clause("no-concurrent-leak", "no identity or header leaks between concurrent requests", core=True)
NO_ANONYMOUS_WRITE = Clause("no-anonymous-write", "no write without an identity outside the system context", core=True)

CORE_GUARANTEES = (TENANT_ISOLATION, NO_UNTRUSTED_IDENTITY, ORDER_INDEPENDENCE, NO_CONCURRENT_LEAK, NO_ANONYMOUS_WRITE)

# -- other clauses -----------------------------------------------------------------------------

PLUGIN_LOADS = Clause("plugin-loads", "the plugin registers with the core plugin manager and its settings validate")
IDENTITY_FROM_GATEWAY = Clause("identity-from-gateway", "a request from the trusted gateway yields its user's identity")
BAD_INPUT_REFUSED = Clause(
    "bad-input-refused", "bad identity input is refused with a 4xx naming the header, never a crash"
)
NO_ECHO = Clause("no-echo", "error messages never echo attribute values or another user's data")
PSEUDO_GROUPS = Clause("pseudo-groups", "groups every user has are not treated as a shared team")
POLICY_DECIDES = Clause(
    "policy-decides", "every action, create included, is decided by the access policy (OGX semantics)"
)
OWNER_STAMPED = Clause("owner-stamped", "rows carry the owner, attributes and tenant of the actor, never of the data")
COMPLETE_PAGES = Clause("complete-pages", "pages are complete, has_more is exact and a cursor resumes")
STORE_ERRORS = Clause("store-errors", "the store raises the contract's errors (400/403/404/409), never others")
ATOMIC = Clause("atomic", "a transaction is all or nothing")
DURABLE = Clause("durable", "rows survive closing and reopening the backend")
HEADERS_WELL_FORMED = Clause("headers-well-formed", "outgoing headers are valid names and values, for any identity")
HEADERS_FOR_USER = Clause("headers-for-user", "a user's outgoing calls carry the plugin's user headers")
HEADERS_PURE = Clause("headers-pure", "outgoing headers depend only on the request, identity and settings")
DECLARED_CAPABILITIES = Clause("declared-capabilities", "a store declares exactly the capabilities its harness pins")
SERVICES_ON_STORE = Clause(
    "services-on-store", "the core's prompts, batches and connectors services work on the backend, per caller"
)
DEPLOYMENT_ISOLATION = Clause("deployment-isolation", "a user never reads, changes or deletes another user's resources")
FAIRNESS_HEADERS = Clause(
    "fairness-headers", "each user's inference calls reach the upstream with that user's fairness headers"
)
CLEANUP = Clause("cleanup", "the deployment suite removes what it created")
