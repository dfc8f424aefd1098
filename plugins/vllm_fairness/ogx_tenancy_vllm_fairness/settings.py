"""The plugin's settings: the ``tenancy.plugins.vllm_fairness`` block of the run config.

```yaml
tenancy:
  plugins:
    vllm_fairness:
      sources:                       # tried in order; the first that yields an id wins
        - {attribute: teams, select: precedence, precedence: [platform, research]}
        - tenant
      fallback_id: shared            # nobody matched: this id (unset: no header, the scheduler's default-flow)
      system_id: ogx-system          # calls made for no user (start-up model refresh, health)
      opaque_ids: {key: "${env.FAIRNESS_ID_KEY}", length: 16}
      max_distinct_ids: 900
      overflow_id: overflow
      header_names: both             # gie | llm-d | both
      objective:
        attribute: subscriptions
        values: {gold: premium, free: best-effort}
        default: standard
```
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)

# What an id we send may look like when it is not made opaque: visible ASCII, no spaces, bounded.
HEADER_SAFE_ID = re.compile(r"[\x21-\x7e]{1,128}")
# InferenceObjective names are Kubernetes object names (RFC 1123 subdomains).
OBJECTIVE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

SelectRule = Literal["first", "lowest", "precedence", "joined"]


def _check_header_safe(value: str | None, what: str) -> str | None:
    if value is not None and not HEADER_SAFE_ID.fullmatch(value):
        raise ValueError(f"{what} must be 1-128 visible ASCII characters without spaces")
    return value


def _check_objective_name(value: str | None, what: str) -> str | None:
    if value is not None and (len(value) > 253 or not OBJECTIVE_NAME.fullmatch(value)):
        raise ValueError(
            f"{what} must name an InferenceObjective: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters"
        )
    return value


class AttributeSource(BaseModel):
    """Take the fairness id from one attribute category of the caller.

    ``select`` says which value when the caller has several (pseudo-groups and excluded values are
    never candidates):

    * ``first`` — the first value, in the order the identity plugins gave them;
    * ``lowest`` — the lowest in sort order (stable whatever order the gateway sends);
    * ``precedence`` — the first value of the ``precedence`` list that the caller has; a caller
      with none of them gets nothing from this source;
    * ``joined`` — every value, sorted and joined with ``separator`` (one flow per combination).
    """

    model_config = ConfigDict(extra="forbid")

    attribute: str = Field(min_length=1, description="attribute category, e.g. teams, namespaces, subscriptions")
    select: SelectRule = Field(default="first", description="first | lowest | precedence | joined")
    precedence: list[str] = Field(default_factory=list, description="values in priority order (select: precedence)")
    separator: str = Field(default="+", min_length=1, description="joins the values (select: joined)")

    @model_validator(mode="after")
    def _options_match_rule(self) -> AttributeSource:
        if self.select == "precedence" and not self.precedence:
            raise ValueError("select: precedence needs a non-empty precedence list")
        if self.precedence and self.select != "precedence":
            raise ValueError(f"precedence is only used with select: precedence (select is {self.select})")
        if "separator" in self.model_fields_set and self.select != "joined":
            raise ValueError(f"separator is only used with select: joined (select is {self.select})")
        if any(not value for value in self.precedence):
            raise ValueError("precedence values must be non-empty strings")
        return self


def _source_kind(source: Any) -> str:
    return "named" if isinstance(source, str) else "attribute"


# A source is 'tenant', 'principal' or an attribute source; the tag keeps validation errors precise.
Source = Annotated[
    Annotated[Literal["tenant", "principal"], Tag("named")] | Annotated[AttributeSource, Tag("attribute")],
    Discriminator(_source_kind),
]


class OpaqueIds(BaseModel):
    """Send a keyed hash of each id instead of the id, so tenant and team names never reach the
    scheduler (or its metrics). The same key always gives the same id, so flows stay stable."""

    model_config = ConfigDict(extra="forbid")

    key: SecretStr = Field(description="HMAC-SHA256 key, at least 16 characters; keep it secret and stable")
    length: int = Field(default=16, ge=8, le=64, description="hex characters kept from the digest (8-64)")

    @field_validator("key")
    @classmethod
    def _key_long_enough(cls, key: SecretStr) -> SecretStr:
        if len(key.get_secret_value()) < 16:
            raise ValueError("key must be at least 16 characters")
        return key


class ObjectiveSettings(BaseModel):
    """Map an attribute value (e.g. the caller's subscription) to an InferenceObjective name.

    When the caller has several mapped values, the one listed first in ``values`` wins.
    """

    model_config = ConfigDict(extra="forbid")

    attribute: str = Field(min_length=1, description="attribute category, e.g. subscriptions")
    values: dict[str, str] = Field(default_factory=dict, description="attribute value -> InferenceObjective name")
    default: str | None = Field(default=None, description="objective for callers with no mapped value (unset: none)")

    @model_validator(mode="after")
    def _names_valid(self) -> ObjectiveSettings:
        if not self.values and self.default is None:
            raise ValueError("objective needs values, a default, or both")
        for value, name in self.values.items():
            if not value:
                raise ValueError("objective values must map non-empty attribute values")
            _check_objective_name(name, f"objective name for value #{list(self.values).index(value) + 1}")
        _check_objective_name(self.default, "default")
        return self


class FairnessSettings(BaseModel):
    """Settings of the ``vllm_fairness`` plugin (``tenancy.plugins.vllm_fairness``)."""

    model_config = ConfigDict(extra="forbid")

    sources: list[Source] = Field(
        default_factory=lambda: ["tenant"],
        description="where the fairness id comes from, tried in order: 'tenant', 'principal', or "
        "{attribute: <category>, select: first|lowest|precedence|joined}",
    )
    fallback_id: str | None = Field(default=None, description="id when no source gives one (unset: no header)")
    system_id: str | None = Field(default=None, description="id for calls made for no user (unset: no header)")
    excluded_values: list[str] = Field(
        default_factory=list,
        description="attribute values never chosen, as glob patterns (added to the built-in pseudo-groups)",
    )
    opaque_ids: OpaqueIds | None = Field(default=None, description="send keyed hashes instead of names")
    max_distinct_ids: int = Field(
        default=900, ge=1, le=100_000,
        description="distinct ids this process sends before folding new ones into overflow_id",
    )
    overflow_id: str = Field(default="overflow", description="the bucket ids past max_distinct_ids are folded into")
    header_names: Literal["gie", "llm-d", "both"] = Field(
        default="gie", description="gie: x-gateway-inference-*, llm-d: x-llm-d-inference-*, both: both sets"
    )
    objective: ObjectiveSettings | None = Field(default=None, description="objective (priority) per caller")
    system_objective: str | None = Field(default=None, description="objective for calls made for no user")

    _rules: Any = PrivateAttr(default=None)

    @field_validator("fallback_id", "system_id", "overflow_id")
    @classmethod
    def _ids_header_safe(cls, value: str | None, info: Any) -> str | None:
        return _check_header_safe(value, info.field_name)

    @field_validator("system_objective")
    @classmethod
    def _system_objective_name(cls, value: str | None) -> str | None:
        return _check_objective_name(value, "system_objective")

    @field_validator("excluded_values")
    @classmethod
    def _patterns_non_empty(cls, patterns: list[str]) -> list[str]:
        if any(not pattern for pattern in patterns):
            raise ValueError("excluded_values must hold non-empty patterns")
        return patterns

    @model_validator(mode="after")
    def _can_produce_something(self) -> FairnessSettings:
        if not self.sources and self.fallback_id is None:
            raise ValueError("sources is empty and fallback_id is unset: no call would ever carry a fairness id")
        return self
