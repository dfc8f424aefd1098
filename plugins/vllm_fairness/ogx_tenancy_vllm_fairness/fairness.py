"""Choosing the fairness id and the objective for a caller, and the header names that carry them.

Everything here is pure and fast (no I/O): it runs on every call OGX makes to vLLM. The only state
is the cardinality guard's set of ids already sent, kept per settings instance (so per process).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from ogx_tenancy import Identity

from .settings import HEADER_SAFE_ID, AttributeSource, FairnessSettings

log = structlog.get_logger("ogx_tenancy.vllm_fairness", plugin="vllm_fairness")

# Gateway API Inference Extension (EPP) names, and llm-d's renamed ones.
GIE_FAIRNESS_ID = "x-gateway-inference-fairness-id"
GIE_OBJECTIVE = "x-gateway-inference-objective"
LLMD_FAIRNESS_ID = "x-llm-d-inference-fairness-id"
LLMD_OBJECTIVE = "x-llm-d-inference-objective"
SCHEDULER_HEADERS = (GIE_FAIRNESS_ID, GIE_OBJECTIVE, LLMD_FAIRNESS_ID, LLMD_OBJECTIVE)

HEADER_NAMES = {
    "gie": ((GIE_FAIRNESS_ID,), (GIE_OBJECTIVE,)),
    "llm-d": ((LLMD_FAIRNESS_ID,), (LLMD_OBJECTIVE,)),
    "both": ((GIE_FAIRNESS_ID, LLMD_FAIRNESS_ID), (GIE_OBJECTIVE, LLMD_OBJECTIVE)),
}

# Groups every authenticated (or unauthenticated) user has: sharing one says nothing about a
# caller, and choosing one would put everybody in a single flow. Never chosen, whatever the config.
PSEUDO_GROUPS = (
    "system:authenticated",
    "system:authenticated:*",
    "system:unauthenticated",
    "system:serviceaccounts",
)

# How often the guard repeats that it is still folding ids, at most.
_FOLD_LOG_INTERVAL_S = 60.0


class CardinalityGuard:
    """Lets through at most ``limit`` distinct ids; later new ids are folded into ``bucket``.

    Schedulers keep per-id metrics for a bounded number of ids (the EPP keeps 1000), so an
    unbounded id space (one per user, say) must not reach them. Ids already admitted stay admitted
    for the life of the process. Folding is logged (without the id) the first time, then at most
    once a minute with the running count.
    """

    def __init__(self, limit: int, bucket: str):
        self.limit = limit
        self.bucket = bucket
        self._admitted: set[str] = set()
        self._lock = threading.Lock()
        self._folded = 0
        self._last_log = 0.0

    def admit(self, fairness_id: str) -> str:
        if fairness_id in self._admitted:
            return fairness_id
        with self._lock:
            if fairness_id in self._admitted:
                return fairness_id
            if len(self._admitted) < self.limit:
                self._admitted.add(fairness_id)
                return fairness_id
            self._folded += 1
            now = time.monotonic()
            if self._folded == 1 or now - self._last_log >= _FOLD_LOG_INTERVAL_S:
                self._last_log = now
                log.warning(
                    "fairness id limit reached: new ids are folded into the overflow bucket",
                    max_distinct_ids=self.limit, overflow_id=self.bucket, folded_calls=self._folded,
                )
        return self.bucket

    @property
    def distinct_ids(self) -> int:
        return len(self._admitted)

    @property
    def folded_calls(self) -> int:
        return self._folded


def opaque_id(value: str, key: bytes, length: int) -> str:
    """The first ``length`` hex characters of HMAC-SHA256(key, value): stable, not reversible."""
    return hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:length]


def _exclusion_matcher(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in (*PSEUDO_GROUPS, *patterns)))


@dataclass(frozen=True)
class FairnessRules:
    """The settings compiled for the request path: build once with ``rules_for(settings)``."""

    settings: FairnessSettings
    excluded: re.Pattern[str]
    fairness_headers: tuple[str, ...]
    objective_headers: tuple[str, ...]
    hmac_key: bytes | None
    guard: CardinalityGuard

    def candidates(self, identity: Identity, category: str) -> list[str]:
        """The caller's values in ``category`` that may be chosen: pseudo-groups and excluded
        values removed, in the order the identity gave them."""
        return [v for v in identity.attributes.get(category, ()) if v and not self.excluded.fullmatch(v)]

    def _from_attribute(self, identity: Identity, source: AttributeSource) -> str | None:
        values = self.candidates(identity, source.attribute)
        if not values:
            return None
        if source.select == "first":
            return values[0]
        if source.select == "lowest":
            return min(values)
        if source.select == "precedence":
            held = set(values)
            return next((value for value in source.precedence if value in held), None)
        return source.separator.join(sorted(values))

    def _usable(self, candidate: str | None) -> str | None:
        # without opaque ids the id goes out as is, so it must be a safe header value
        if candidate is None or (self.hmac_key is None and not HEADER_SAFE_ID.fullmatch(candidate)):
            return None
        return candidate

    def raw_fairness_id(self, identity: Identity) -> str | None:
        """The id the first matching source gives, before hashing and the cardinality guard."""
        for source in self.settings.sources:
            if source == "tenant":
                candidate = identity.tenant_id
            elif source == "principal":
                candidate = identity.principal
            else:
                candidate = self._from_attribute(identity, source)
            if usable := self._usable(candidate):
                return usable
        return None

    def fairness_id(self, identity: Identity | None) -> str | None:
        """The id to send for ``identity`` (None = a call made for no user), or None for no header."""
        if identity is None:
            return self.settings.system_id
        raw = self.raw_fairness_id(identity)
        if raw is None:
            return self.settings.fallback_id
        if self.hmac_key is not None:
            raw = opaque_id(raw, self.hmac_key, self.settings.opaque_ids.length)  # type: ignore[union-attr]
        return self.guard.admit(raw)

    def objective(self, identity: Identity | None) -> str | None:
        """The InferenceObjective name for ``identity``, or None for no header."""
        if identity is None:
            return self.settings.system_objective
        objective = self.settings.objective
        if objective is None:
            return None
        held = set(self.candidates(identity, objective.attribute))
        for value, name in objective.values.items():
            if value in held:
                return name
        return objective.default

    def headers(self, identity: Identity | None) -> dict[str, str]:
        """Every header this plugin sends for ``identity``."""
        headers: dict[str, str] = {}
        if (fairness_id := self.fairness_id(identity)) is not None:
            headers.update(dict.fromkeys(self.fairness_headers, fairness_id))
        if (objective := self.objective(identity)) is not None:
            headers.update(dict.fromkeys(self.objective_headers, objective))
        return headers


_build_lock = threading.Lock()


def rules_for(settings: FairnessSettings) -> FairnessRules:
    """The compiled rules of ``settings``, built on first use and kept on the settings instance
    (one cardinality guard per settings instance, so per process)."""
    rules = settings._rules
    if rules is not None:
        return rules
    with _build_lock:
        if settings._rules is not None:
            return settings._rules
        fairness_headers, objective_headers = HEADER_NAMES[settings.header_names]
        rules = FairnessRules(
            settings=settings,
            excluded=_exclusion_matcher(settings.excluded_values),
            fairness_headers=fairness_headers,
            objective_headers=objective_headers,
            hmac_key=settings.opaque_ids.key.get_secret_value().encode() if settings.opaque_ids else None,
            guard=CardinalityGuard(settings.max_distinct_ids, settings.overflow_id),
        )
        settings._rules = rules
        return rules
