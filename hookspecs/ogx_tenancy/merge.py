"""Merging what several plugins returned, by rules that never depend on plugin order.

Each function takes ``(plugin_name, result)`` pairs and sorts them by plugin name first, so the
outcome is the same whatever order pluggy called the plugins in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import structlog

from .types import HeaderConflict, Identity, IdentityRejected

log = structlog.get_logger("ogx_tenancy.merge")


def merge_identities(contributions: Iterable[tuple[str, Identity]]) -> Identity | None:
    """One Identity from the non-None identity hook results.

    Exactly one contribution may carry a principal; attributes are unioned per category,
    de-duplicated in order; tenant ids must agree. Returns None when nobody claimed a principal
    (partial identities alone do not make a user).

    :raises IdentityRejected: (401) on two principal claims or disagreeing tenants.
    """
    ordered = sorted(contributions, key=lambda item: item[0])
    if not ordered:
        return None
    if len(ordered) == 1:  # the common case, on every request: nothing to merge or disagree with
        only = ordered[0][1]
        return only if only.principal is not None else None
    claims = [(plugin, identity.principal) for plugin, identity in ordered if identity.principal is not None]
    if len(claims) > 1:
        log.warning("two plugins claimed the principal", plugins=[plugin for plugin, _ in claims])
        raise IdentityRejected(401, "identity is ambiguous: more than one identity plugin claimed the caller")
    tenants = {(plugin, identity.tenant_id) for plugin, identity in ordered if identity.tenant_id is not None}
    if len({tenant for _, tenant in tenants}) > 1:
        log.warning("identity plugins disagree on the tenant", plugins=sorted(plugin for plugin, _ in tenants))
        raise IdentityRejected(401, "identity is ambiguous: identity plugins disagree on the tenant")
    if not claims:
        return None
    attributes: dict[str, dict[str, None]] = {}
    for _, identity in ordered:
        for category, values in identity.attributes.items():
            bucket = attributes.setdefault(category, {})
            for value in values:
                bucket.setdefault(value, None)
    return Identity(
        principal=claims[0][1],
        attributes={category: tuple(values) for category, values in attributes.items()},
        tenant_id=next(iter(tenants))[1] if tenants else None,
    )


def merge_headers(contributions: Iterable[tuple[str, Mapping[str, str]]]) -> dict[str, str]:
    """Union of header dicts; names lower-cased.

    :raises HeaderConflict: when two plugins set one header (case-insensitively) to different values.
    :raises TypeError: when a plugin returned a name or value that is not a string.
    """
    merged: dict[str, str] = {}
    set_by: dict[str, str] = {}
    for plugin, headers in sorted(contributions, key=lambda item: item[0]):
        for name, value in headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"plugin {plugin!r} returned a non-string header name or value for {name!r}")
            key = name.lower()
            if key in merged and merged[key] != value:
                raise HeaderConflict(key, (set_by[key], plugin))
            merged[key] = value
            set_by.setdefault(key, plugin)
    return merged
