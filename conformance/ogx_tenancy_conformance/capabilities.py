"""Every capability a test may require, with where its value comes from and what it means.

Capabilities are declared by the implementation, never guessed: a store declares its own through
``StoreCapabilities``; identity and header plugins declare theirs on their harness (see
``ogx_tenancy_conformance.harness``); a deployment declares its own in the identities file. A test
whose capability is not declared is skipped with the reason printed here. Core guarantees require
no capability.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capability:
    """One optional feature.

    :param name: the name tests require and reports show.
    :param family: the hook family (or ``deployment``).
    :param declared_by: where the implementation declares it.
    :param meaning: what having it promises.
    """

    name: str
    family: str
    declared_by: str
    meaning: str

    def skip_reason(self) -> str:
        return f"capability {self.name!r} not declared ({self.declared_by}): {self.meaning}"


_ALL = (
    # identity
    Capability(
        "attributes",
        "identity",
        "IdentityHarness.attribute_categories",
        "the gateway's attribute categories (teams, roles, ...) reach the Identity",
    ),
    Capability("tenants", "identity", "IdentityHarness.tenants", "the gateway's tenant id reaches the Identity"),
    Capability(
        "pseudo_groups",
        "identity",
        "IdentityHarness.pseudo_groups",
        "groups every user has (system:authenticated, ...) are dropped from the Identity",
    ),
    # storage
    Capability(
        "transactions", "storage", "StoreCapabilities.transactions", "transaction() makes the enclosed calls atomic"
    ),
    Capability("persistent", "storage", "StoreCapabilities.persistent", "rows survive a restart of the process"),
    Capability(
        "backdoor",
        "storage",
        "StorageHarness.raw_rows",
        "the harness can read stored rows without the store API, to check what was persisted",
    ),
    # headers
    Capability(
        "user_headers",
        "headers",
        "HeaderHarness.user_headers",
        "the plugin names the headers whose values come from the user",
    ),
    Capability(
        "every_endpoint",
        "headers",
        "HeaderHarness.endpoints",
        "user headers are added on every endpoint kind (chat, completions, embeddings, messages, "
        "rerank, models, health)",
    ),
    # deployment
    Capability(
        "recording_upstream",
        "deployment",
        "identities file: upstream",
        "the file names a recording upstream (fake vLLM) and a model served through it",
    ),
    Capability(
        "team_sharing",
        "deployment",
        "identities file: expect_team_sharing",
        "identities that share a team can read each other's resources",
    ),
    Capability(
        "connectors",
        "deployment",
        "identities file: connectors",
        "the file lists which connectors each identity may and may not see",
    ),
    Capability(
        "inference",
        "deployment",
        "identities file: model",
        "the file names a model the deployment serves, for responses and batches",
    ),
)

CAPABILITIES: dict[str, Capability] = {c.name: c for c in _ALL}


def capability(name: str) -> Capability:
    """The registered capability ``name`` (a typo in the suite fails at import, not silently)."""
    try:
        return CAPABILITIES[name]
    except KeyError:
        raise KeyError(f"unknown capability {name!r}; known: {', '.join(sorted(CAPABILITIES))}") from None
