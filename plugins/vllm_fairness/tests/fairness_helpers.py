"""Small builders shared by the vllm_fairness tests."""

from __future__ import annotations

from typing import Any

from ogx_tenancy import Identity
from ogx_tenancy_vllm_fairness.fairness import FairnessRules, rules_for
from ogx_tenancy_vllm_fairness.settings import FairnessSettings


def person(principal: str = "alice", tenant: str | None = "acme", **attributes: list[str]) -> Identity:
    """An identity with ``attributes`` given as keyword arguments (``teams=[...]``)."""
    return Identity(principal=principal, attributes=attributes, tenant_id=tenant)


def rules(**settings: Any) -> FairnessRules:
    """Fresh compiled rules (and a fresh cardinality guard) from settings keywords."""
    return rules_for(FairnessSettings.model_validate(settings))
