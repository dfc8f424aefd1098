"""This plugin's declaration for the conformance suite (entry-point group ``ogx_tenancy_conformance``).

Loaded only by ``ogx-tenancy-conformance plugin vllm_fairness``: the fairness id comes from the
tenant, else the principal, and is added on every endpoint kind.
"""

from __future__ import annotations

from ogx_tenancy import EndpointKind
from ogx_tenancy_conformance import ConformanceProfile, HeaderHarness

from .fairness import GIE_FAIRNESS_ID


class FairnessHeaderHarness(HeaderHarness):
    settings = {"sources": ["tenant", "principal"]}
    user_headers = (GIE_FAIRNESS_ID,)
    endpoints = frozenset(EndpointKind)


class Profile(ConformanceProfile):
    headers = FairnessHeaderHarness
