"""ogx-tenancy: multi-tenancy for OGX through plugins.

Plugin authors need ``hookimpl``, the types, and (for storage) the store contract::

    from ogx_tenancy import hookimpl, Identity, IdentityRejected

Provider and service code running inside ``ogx-tenancy run`` use ``current_identity()``,
``outgoing_headers(...)`` and ``open_store(...)``.
"""

from importlib.metadata import PackageNotFoundError, version

from .context import SystemContext, acting_as, current_actor, current_identity, system_context
from .hookspecs import hookimpl
from .host import Tenancy, open_store, outgoing_headers
from .policy import Action, Policy, Resource
from .store import (
    AccessControlledStore,
    AccessDenied,
    CollectionSpec,
    FieldSpec,
    InvalidRowData,
    Owner,
    Page,
    Row,
    RowConflict,
    RowNotFound,
    StorageBackend,
    StoreCapabilities,
)
from .types import (
    EndpointKind,
    HeaderConflict,
    Identity,
    IdentityRejected,
    IncomingRequest,
    OutgoingRequest,
    RequestHeaders,
)

try:
    __version__ = version("ogx-tenancy")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AccessControlledStore",
    "AccessDenied",
    "Action",
    "CollectionSpec",
    "EndpointKind",
    "FieldSpec",
    "HeaderConflict",
    "Identity",
    "IdentityRejected",
    "IncomingRequest",
    "InvalidRowData",
    "OutgoingRequest",
    "Owner",
    "Page",
    "Policy",
    "RequestHeaders",
    "Resource",
    "Row",
    "RowConflict",
    "RowNotFound",
    "StorageBackend",
    "StoreCapabilities",
    "SystemContext",
    "Tenancy",
    "__version__",
    "acting_as",
    "current_actor",
    "current_identity",
    "hookimpl",
    "open_store",
    "outgoing_headers",
    "system_context",
]
