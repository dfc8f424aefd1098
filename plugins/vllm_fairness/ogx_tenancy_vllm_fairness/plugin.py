"""The ``vllm_fairness`` plugin: fairness-id and objective headers on every outgoing inference call.

Registered in the ``ogx_tenancy`` entry-point group. The host calls the header hook for every
call a tenancy-aware inference provider makes (this distribution's ``remote::vllm-tenancy``
provider, for one) and merges the result with every other plugin's headers.
"""

from __future__ import annotations

from ogx_tenancy import Identity, OutgoingRequest, hookimpl

from .fairness import rules_for
from .settings import FairnessSettings


@hookimpl
def ogx_tenancy_settings_model() -> type[FairnessSettings]:
    """Settings live in ``tenancy.plugins.vllm_fairness`` (see ``FairnessSettings``)."""
    return FairnessSettings


@hookimpl
def ogx_tenancy_extra_request_headers(
    request: OutgoingRequest, identity: Identity | None, settings: FairnessSettings
) -> dict[str, str] | None:
    """The fairness id and objective headers for ``identity`` (None: a call made for no user).

    Pure and fast: reads the caller only from ``identity``; the only state is the cardinality
    guard's memory of the ids already sent.
    """
    return rules_for(settings).headers(identity) or None
