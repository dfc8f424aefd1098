"""What a plugin tells the suite about itself: one harness per hook family, grouped in a profile.

The suite knows the contract; it cannot know how to build a request your identity plugin accepts,
which settings to test with, or where a database for your store lives. A harness says that, and
declares the plugin's optional capabilities (nothing is guessed). Subclass the family's harness,
then either

* subclass the family's suite in your own tests and return the harness from a fixture, or
* group the harnesses in a ``ConformanceProfile`` and register it in the entry-point group
  ``ogx_tenancy_conformance`` under the same name as your plugin's ``ogx_tenancy`` entry point;
  ``ogx-tenancy-conformance plugin NAME`` then runs every family the plugin implements.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ogx_tenancy import EndpointKind, Identity, IncomingRequest, StoreCapabilities


@dataclass(frozen=True)
class TestUser:
    """A user the suite asks your gateway (or test request builder) to present.

    :param principal: the user name.
    :param attributes: category -> values (``teams``, ``roles``, ...).
    :param tenant_id: the tenant, or None.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    principal: str
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tenant_id: str | None = None

    def identity(self) -> Identity:
        return Identity(self.principal, self.attributes, self.tenant_id)


# Users of two tenants and of none. Team names repeat across tenants on purpose: "crimson-team" in
# tenant-alpha must not open rows of "crimson-team" in tenant-beta. Values are distinctive so a test
# can tell when an error message echoes one.
ALICE = TestUser("alice", {"teams": ("crimson-team",), "roles": ("writer-role",)}, "tenant-alpha")
CAROL = TestUser("carol", {"teams": ("crimson-team", "azure-team")}, "tenant-alpha")
DAVE = TestUser("dave", {"teams": ("azure-team",), "roles": ("reader-role",)}, "tenant-alpha")
BOB = TestUser("bob", {"teams": ("crimson-team",), "roles": ("writer-role",)}, "tenant-beta")
ERIN = TestUser("erin", {"teams": ("jade-team",)}, "tenant-beta")
FRANK = TestUser("frank", {"teams": ("crimson-team",)}, None)
STANDARD_USERS: tuple[TestUser, ...] = (ALICE, CAROL, DAVE, BOB, ERIN, FRANK)


class IdentityHarness:
    """How the suite talks to an identity plugin (``ogx_tenancy_identity``).

    Required: ``identity_headers``, ``request_for`` and ``forged_request``. The rest has defaults.
    """

    #: the plugin's ``tenancy.plugins.<name>`` block used for every test
    settings: ClassVar[Mapping[str, Any]] = {}
    #: headers that carry identity (each is sent twice, with bad values, ... by the suite)
    identity_headers: ClassVar[tuple[str, ...]] = ()
    #: capability ``attributes``: the categories a gateway request can carry into the Identity
    attribute_categories: ClassVar[tuple[str, ...]] = ()
    #: capability ``tenants``: the tenant id reaches the Identity
    tenants: ClassVar[bool] = False
    #: capability ``pseudo_groups``: (category, value) pairs every user has that the plugin drops
    pseudo_groups: ClassVar[tuple[tuple[str, str], ...]] = ()

    def request_for(self, user: TestUser) -> IncomingRequest:
        """A request for ``user`` exactly as the trusted gateway would send it."""
        raise NotImplementedError(f"{type(self).__name__} must implement request_for(user)")

    def forged_request(self, user: TestUser) -> IncomingRequest:
        """The same claim as a client that is *not* the gateway can send it: from an untrusted address,
        without or with a wrong signature, with an unverifiable token... The plugin must not believe it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement forged_request(user): every identity plugin must tell "
            "a trusted gateway from a client (no identity from client-controlled headers)"
        )

    def expected_identity(self, user: TestUser) -> Identity:
        """The Identity the plugin should return for ``request_for(user)``."""
        attributes = {c: v for c, v in user.attributes.items() if c in self.attribute_categories}
        return Identity(user.principal, attributes, user.tenant_id if self.tenants else None)

    def users(self) -> Sequence[TestUser]:
        """The users the tests present (override to adapt names to your gateway's rules)."""
        return STANDARD_USERS


class StorageHarness:
    """How the suite opens the backends a storage plugin registers (``ogx_tenancy_storage_backends``).

    Capabilities come from the store itself (``store.capabilities``); pin them in
    ``expected_capabilities`` so a change is noticed.
    """

    settings: ClassVar[Mapping[str, Any]] = {}
    #: backend names to test; empty = every backend the plugin registers
    backends: ClassVar[tuple[str, ...]] = ()
    #: backend name -> the capabilities its stores must declare (checked by ``storage.declared-capabilities``)
    expected_capabilities: ClassVar[Mapping[str, StoreCapabilities]] = {}

    @contextlib.asynccontextmanager
    async def backend_config(self, backend: str, workdir: Path) -> AsyncIterator[Mapping[str, Any]]:
        """Yield the ``tenancy.storage.config`` for a fresh, empty database of ``backend``; clean up after.

        ``workdir`` is an empty directory private to this test.
        """
        yield {}

    async def raw_rows(self, backend: str, backend_object: Any, collection: str) -> list[Mapping[str, Any]] | None:
        """Capability ``backdoor``: every stored row of ``collection`` read without the store API, each a
        mapping with ``id``, ``owner_principal``, ``tenant_id`` (``""`` for global) and the data fields.
        None (the default) when the harness cannot.
        """
        return None


class HeaderHarness:
    """How the suite calls an outgoing-header plugin (``ogx_tenancy_extra_request_headers``)."""

    settings: ClassVar[Mapping[str, Any]] = {}
    #: capability ``user_headers``: headers whose value comes from the user (e.g. a fairness id)
    user_headers: ClassVar[tuple[str, ...]] = ()
    #: endpoint kinds on which the user headers are added (capability ``every_endpoint`` when all kinds)
    endpoints: ClassVar[frozenset[EndpointKind]] = frozenset({EndpointKind.CHAT})
    provider_type: ClassVar[str] = "remote::vllm"
    provider_id: ClassVar[str] = "conformance-vllm"
    model: ClassVar[str] = "conformance-model"

    def identities(self) -> Sequence[Identity]:
        """Identities the tests call the hook for."""
        return [user.identity() for user in STANDARD_USERS]


class ConformanceProfile:
    """A plugin's declaration for ``ogx-tenancy-conformance plugin NAME``.

    Register it in the entry-point group ``ogx_tenancy_conformance`` under the plugin's name::

        [project.entry-points.ogx_tenancy_conformance]
        my_plugin = "my_plugin.conformance:Profile"

    Set the harness of every family the plugin implements. A family left unset runs with the
    family's default harness where one can work (headers) and fails with an explanation where none
    can (identity, storage).
    """

    #: each a harness class or instance, or None
    identity: ClassVar[type[IdentityHarness] | IdentityHarness | None] = None
    storage: ClassVar[type[StorageHarness] | StorageHarness | None] = None
    headers: ClassVar[type[HeaderHarness] | HeaderHarness | None] = None
