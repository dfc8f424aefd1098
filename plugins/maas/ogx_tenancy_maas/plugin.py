"""The hook implementations registered as plugin ``maas`` in the ``ogx_tenancy`` entry-point group."""

from __future__ import annotations

from pydantic import BaseModel

from ogx_tenancy import Identity, IncomingRequest, hookimpl

from .extractor import IdentityExtractor
from .settings import MaasSettings

# The host validates settings once and passes the same instance on every call: compile each once.
# Keyed by id() and holding the instance, so an id is never reused while its entry lives.
_extractors: dict[int, tuple[MaasSettings, IdentityExtractor]] = {}


def extractor_for(settings: MaasSettings) -> IdentityExtractor:
    """The compiled extractor of a settings instance."""
    entry = _extractors.get(id(settings))
    if entry is None or entry[0] is not settings:
        entry = (settings, IdentityExtractor(settings))
        _extractors[id(settings)] = entry
    return entry[1]


@hookimpl
def ogx_tenancy_settings_model() -> type[BaseModel]:
    """The ``tenancy.plugins.maas`` block: header mapping, limits and trust checks."""
    return MaasSettings


@hookimpl
def ogx_tenancy_identity(request: IncomingRequest, settings: MaasSettings) -> Identity | None:
    """The caller's identity from the MaaS gateway's headers, once the gateway is verified.

    None when the request carries no identity header; ``IdentityRejected`` (400/401/403, naming the
    header, never echoing a value) when it carries them from an unverified peer or malformed.
    """
    return extractor_for(settings).identify(request)
