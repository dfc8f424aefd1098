"""Asking every installed plugin for the headers of one outgoing call, failing closed.

The provider calls ``headers_for_call`` once per call it makes upstream. A conflict between two
plugins, a plugin that raises, or a plugin that tries to set a header the provider owns (its
credentials, the body's framing) fails the call with ``OutgoingHeadersError``: a call whose
tenancy headers cannot be trusted is never sent.
"""

from __future__ import annotations

import structlog

import ogx_tenancy
from ogx_tenancy import HeaderConflict, OutgoingRequest

log = structlog.get_logger("ogx_tenancy.vllm_fairness", plugin="vllm_fairness")

# Headers the provider itself sets or the HTTP layer owns; a plugin setting one is refused.
PROTECTED_HEADERS = frozenset({
    "authorization", "x-api-key", "anthropic-version", "content-type", "content-length", "content-encoding",
    "transfer-encoding", "connection", "host", "te", "upgrade", "cookie", "proxy-authorization",
})


class OutgoingHeadersError(RuntimeError):
    """The tenancy headers of an outgoing call could not be computed; the call is not made.

    The client gets a 500 with this message (the server is misconfigured; the client can do nothing
    about it). The message names plugins and header names, never header values.
    """

    status_code = 500


def headers_for_call(request: OutgoingRequest) -> dict[str, str]:
    """The merged headers of every plugin for ``request``, for the current user (or for no user).

    :raises OutgoingHeadersError: on a conflict between plugins, a failing plugin, or a plugin
        setting a protected header.
    """
    try:
        headers = ogx_tenancy.outgoing_headers(request)
    except HeaderConflict as conflict:
        log.error(
            "outgoing header conflict between plugins: call refused",
            header=conflict.header, plugins=list(conflict.plugins),
            provider_id=request.provider_id, endpoint=request.endpoint.value,
        )
        raise OutgoingHeadersError(
            f"ogx-tenancy: plugins {conflict.plugins[0]!r} and {conflict.plugins[1]!r} set the outgoing header "
            f"{conflict.header!r} to different values, so the call to provider {request.provider_id!r} was not "
            "made; an operator must configure one of them not to set it"
        ) from None
    except Exception:
        log.exception("outgoing header hooks failed: call refused",
                      provider_id=request.provider_id, endpoint=request.endpoint.value)
        raise OutgoingHeadersError(
            f"ogx-tenancy: the outgoing headers for provider {request.provider_id!r} could not be computed "
            "(see the server log), so the call was not made"
        ) from None
    protected = sorted(PROTECTED_HEADERS.intersection(headers))
    if protected:
        log.error("a plugin tried to set protected outgoing headers: call refused",
                  headers=protected, provider_id=request.provider_id)
        raise OutgoingHeadersError(
            f"ogx-tenancy: a plugin tried to set the protected header(s) {', '.join(protected)} on a call to "
            f"provider {request.provider_id!r}; the call was not made"
        )
    return headers
