"""The identities file of the deployment suite: who to be, who shares what, how to look untrusted.

```yaml
identities:                      # at least two; each a set of headers and/or a bearer token
  alice: {headers: {x-maas-username: alice, x-maas-group: '["team-a"]'}}
  bob:   {headers: {x-maas-username: bob, x-maas-group: '["team-b"]'}}
  carol: {token: "sk-carol-..."}                 # sent as "Authorization: Bearer ..."
teams: [[alice, carol]]          # identities that share a team: they may see each other's resources
tenants: {alpha: [alice, carol], beta: [bob]}   # optional: a leak across tenants is reported as such
expect_team_sharing: false       # capability team_sharing: also check teammates DO see each other's
untrusted:                       # how a client that is not the gateway presents alice's identity
  source_address: 127.0.0.2      # connect from this local address (trusted_proxy_cidrs deployments), and/or
  base_url: http://127.0.0.1:9000  # a listener that bypasses the gateway, and/or
  headers: {x-acme-signature: forged}   # headers replacing alice's (e.g. a wrong signature)
model: vllm/my-model             # capability inference: a model for responses and fairness checks
upstream:                        # capability recording_upstream: where the fake vLLM tells what it received
  records_url: http://127.0.0.1:9100/__records
  fairness_headers: [x-gateway-inference-fairness-id]
connectors:                      # capability connectors: connector ids each identity may / may not see
  alice: {visible: [c-global, c-alpha], hidden: [c-beta]}
```
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class IdentitiesFileError(Exception):
    """The identities file is unreadable or invalid; the message names the key at fault."""


class IdentitySpec(BaseModel):
    """How one identity presents itself."""

    model_config = ConfigDict(extra="forbid")
    headers: dict[str, str] = Field(default_factory=dict, description="headers the gateway would add")
    token: str | None = Field(default=None, description="bearer token, sent as Authorization: Bearer")

    @model_validator(mode="after")
    def _something(self) -> IdentitySpec:
        if not self.headers and not self.token:
            raise ValueError("an identity needs headers or a token")
        return self

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


class UntrustedSpec(BaseModel):
    """How an untrusted client presents the first identity's claim."""

    model_config = ConfigDict(extra="forbid")
    source_address: str | None = None
    base_url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> UntrustedSpec:
        if not (self.source_address or self.base_url or self.headers):
            raise ValueError("untrusted needs source_address, base_url or headers")
        return self


class UpstreamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records_url: str = Field(description="GET returns the recorded requests as JSON: [{path, headers}]")
    fairness_headers: list[str] = Field(min_length=1)


class ConnectorExpectation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visible: list[str] = Field(default_factory=list)
    hidden: list[str] = Field(default_factory=list)


class IdentitiesFile(BaseModel):
    """The whole file; see the module docstring."""

    model_config = ConfigDict(extra="forbid")
    identities: dict[str, IdentitySpec] = Field(min_length=2)
    teams: list[list[str]] = Field(default_factory=list)
    tenants: dict[str, list[str]] = Field(default_factory=dict)
    expect_team_sharing: bool = False
    untrusted: UntrustedSpec | None = None
    model: str | None = None
    upstream: UpstreamSpec | None = None
    connectors: dict[str, ConnectorExpectation] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names_known(self) -> IdentitiesFile:
        known = set(self.identities)
        named = [n for group in self.teams for n in group] + [n for group in self.tenants.values() for n in group]
        named += list(self.connectors)
        unknown = sorted(set(named) - known)
        if unknown:
            raise ValueError(f"names not under identities: {unknown}")
        if not self.strangers():
            raise ValueError("every pair of identities shares a team: list at least two that share nothing")
        return self

    def first(self) -> str:
        return next(iter(self.identities))

    def share(self, a: str, b: str) -> bool:
        """``a`` and ``b`` may see each other's resources (same identity, or a common team)."""
        return a == b or any(a in group and b in group for group in self.teams)

    def tenant_of(self, name: str) -> str | None:
        return next((t for t, members in self.tenants.items() if name in members), None)

    def across_tenants(self, a: str, b: str) -> bool:
        ta, tb = self.tenant_of(a), self.tenant_of(b)
        return ta is not None and tb is not None and ta != tb

    def strangers(self) -> list[tuple[str, str]]:
        """Ordered pairs (owner, other) that share nothing."""
        return [(a, b) for a, b in itertools.permutations(self.identities, 2) if not self.share(a, b)]


def load_identities(path: str | Path) -> IdentitiesFile:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise IdentitiesFileError(f"cannot read identities file {path}: {e.strerror}") from None
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise IdentitiesFileError(f"identities file {path} is not valid YAML/JSON: {e}") from None
    try:
        return IdentitiesFile.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in e.errors())
        raise IdentitiesFileError(f"identities file {path}: {problems}") from None
