"""The plugin's settings: the ``tenancy.plugins.maas`` block of the OGX run config.

Validation happens once, at start-up (``ogx-tenancy run`` and ``ogx-tenancy check``); a bad value
stops start-up with a message naming the plugin, the key and what was expected.
"""

from __future__ import annotations

import ipaddress
import re

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

log = structlog.get_logger("ogx_tenancy.maas").bind(plugin="maas")

DEFAULT_PRINCIPAL_HEADER = "X-MaaS-Username"
DEFAULT_ATTRIBUTE_HEADERS = {"X-MaaS-Group": "teams", "X-MaaS-Subscription": "namespaces"}
DEFAULT_SIGNATURE_HEADER = "X-MaaS-Signature"
DEFAULT_TIMESTAMP_HEADER = "X-MaaS-Timestamp"
# Groups every authenticated Kubernetes/OpenShift user or service account has: sharing one says nothing.
DEFAULT_PSEUDO_GROUPS = ("system:authenticated", "system:authenticated:oauth", "system:serviceaccounts")
MIN_HMAC_KEY_LENGTH = 32

# RFC 9110 token: what a header name may consist of.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _invalid(message: str) -> PydanticCustomError:
    # a custom error keeps pydantic's "Value error, " prefix out of the start-up message
    return PydanticCustomError("maas_settings", message)


def _check_header_name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise _invalid(f"{name!r} is not a valid HTTP header name (letters, digits and !#$%&'*+.^_`|~- only)")
    return name


class MaasSettings(BaseModel):
    """Where the gateway puts the caller's identity, and how the plugin verifies the gateway.

    At least one trust check (``trusted_proxy_cidrs``, ``hmac_key``) must be configured, or
    ``allow_unverified: true`` set explicitly. When both checks are configured, both must pass.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- mapping ----------------------------------------------------------------------------------
    principal_header: str = Field(
        DEFAULT_PRINCIPAL_HEADER,
        description="Header holding the caller's user name (one plain value); it becomes OGX's principal.",
    )
    attribute_headers: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ATTRIBUTE_HEADERS),
        description=(
            "Header -> attribute category (OGX's roles, teams, projects, namespaces, or any name). Each value may be "
            'a JSON array string (["a","b"]), a JSON string ("a"), the Authorino @tostr form ([a b]), a '
            "comma-separated list (a, b) or one plain value."
        ),
    )
    tenant_header: str | None = Field(
        None,
        description="Header holding the tenant id (one canonical value). Exclusive with tenant_from_attribute.",
    )
    tenant_from_attribute: str | None = Field(
        None,
        description=(
            "Attribute category whose single value is the tenant id, e.g. namespaces (the MaaS subscription). "
            "Exactly one of attribute_headers must map to it. Exclusive with tenant_header."
        ),
    )
    static_attributes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Attributes added to every identity this plugin establishes, e.g. {roles: [user]}.",
    )
    pseudo_groups: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PSEUDO_GROUPS),
        description=(
            "Values every authenticated user carries; dropped from header attributes so that sharing one never "
            "grants access. [] keeps them."
        ),
    )

    # -- limits -----------------------------------------------------------------------------------
    max_value_length: int = Field(256, ge=1, le=8192, description="Longest accepted value, in characters.")
    max_values: int = Field(64, ge=1, le=4096, description="Most values accepted in one attribute header.")

    # -- trust ------------------------------------------------------------------------------------
    trusted_proxy_cidrs: list[str] = Field(
        default_factory=list,
        description=(
            "Networks of the gateway, e.g. [10.128.0.0/14]. Identity headers are believed only when the socket "
            "peer (and every hop counted by forwarded_for_hops) is inside one of them."
        ),
    )
    forwarded_for_hops: int = Field(
        0,
        ge=0,
        le=16,
        description=(
            "Trusted proxies between the gateway and OGX that append to X-Forwarded-For. With N > 0 the N "
            "right-most X-Forwarded-For entries must also be inside trusted_proxy_cidrs."
        ),
    )
    hmac_key: SecretStr | None = Field(
        None,
        description=(
            f"Shared secret (at least {MIN_HMAC_KEY_LENGTH} characters) the gateway signs the identity headers "
            "with, HMAC-SHA256; e.g. ${env.MAAS_HMAC_KEY}."
        ),
    )
    hmac_previous_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Older keys still accepted while the gateway rotates to hmac_key.",
    )
    signature_header: str = Field(DEFAULT_SIGNATURE_HEADER, description="Header carrying the hex HMAC-SHA256.")
    timestamp_header: str = Field(DEFAULT_TIMESTAMP_HEADER, description="Header carrying the signing time (Unix s).")
    max_clock_skew_seconds: int = Field(
        60,
        ge=1,
        le=3600,
        description="How far the signing time may differ from this server's clock (also the replay window).",
    )
    allow_unverified: bool = Field(
        False,
        description=(
            "Believe identity headers from anyone when no trust check is configured. For development only: "
            "any client can then claim any identity."
        ),
    )

    @field_validator("principal_header", "tenant_header", "signature_header", "timestamp_header")
    @classmethod
    def _header_name(cls, name: str | None) -> str | None:
        return None if name is None else _check_header_name(name)

    @field_validator("attribute_headers")
    @classmethod
    def _attribute_headers(cls, mapping: dict[str, str]) -> dict[str, str]:
        for header, category in mapping.items():
            _check_header_name(header)
            if not category:
                raise _invalid(f"the category of header {header!r} must not be empty")
        return mapping

    @field_validator("static_attributes")
    @classmethod
    def _static_attributes(cls, attributes: dict[str, list[str]]) -> dict[str, list[str]]:
        for category, values in attributes.items():
            if not category or any(not value for value in values):
                raise _invalid("categories and values must be non-empty strings")
        return attributes

    @field_validator("trusted_proxy_cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as e:
                raise _invalid(f"{cidr!r} is not a network in CIDR notation such as 10.0.0.0/8 ({e})") from None
        return cidrs

    @field_validator("hmac_key", "hmac_previous_keys")
    @classmethod
    def _key_length(cls, key: SecretStr | list[SecretStr] | None) -> SecretStr | list[SecretStr] | None:
        for one in key if isinstance(key, list) else [key] if key is not None else []:
            if len(one.get_secret_value()) < MIN_HMAC_KEY_LENGTH:
                raise _invalid(
                    f"an HMAC key must be at least {MIN_HMAC_KEY_LENGTH} characters; generate one with "
                    "`openssl rand -hex 32`"
                )
        return key

    @model_validator(mode="after")
    def _consistent(self) -> MaasSettings:
        names = [self.principal_header, *self.attribute_headers, self.signature_header, self.timestamp_header]
        if self.tenant_header:
            names.append(self.tenant_header)
        lowered = [name.lower() for name in names]
        repeated = sorted({name for name in lowered if lowered.count(name) > 1})
        if repeated:
            raise _invalid(f"each header may have one role only; used more than once: {', '.join(repeated)}")
        if "x-forwarded-for" in lowered:
            raise _invalid("X-Forwarded-For cannot be an identity header")
        if self.tenant_header and self.tenant_from_attribute:
            raise _invalid("set tenant_header or tenant_from_attribute, not both")
        if self.tenant_from_attribute:
            sources = [h for h, category in self.attribute_headers.items() if category == self.tenant_from_attribute]
            if len(sources) != 1:
                raise _invalid(
                    f"tenant_from_attribute: exactly one of attribute_headers must map to category "
                    f"{self.tenant_from_attribute!r} (found {len(sources)})"
                )
        if self.forwarded_for_hops and not self.trusted_proxy_cidrs:
            raise _invalid("forwarded_for_hops needs trusted_proxy_cidrs: every counted hop is checked against them")
        if self.hmac_previous_keys and self.hmac_key is None:
            raise _invalid("hmac_previous_keys needs hmac_key (the current key the gateway signs with)")
        if not self.is_verified:
            if not self.allow_unverified:
                raise _invalid(
                    "no trust check is configured: set trusted_proxy_cidrs (the gateway's networks) and/or hmac_key "
                    "(a secret the gateway signs the identity headers with), or set allow_unverified: true to "
                    "believe identity headers from any client (development only)"
                )
            log.warning(
                "identity headers are believed WITHOUT verification: any client that reaches this server can claim "
                "any identity (allow_unverified is true and neither trusted_proxy_cidrs nor hmac_key is set)"
            )
        return self

    @property
    def is_verified(self) -> bool:
        """Whether at least one trust check is configured."""
        return bool(self.trusted_proxy_cidrs) or self.hmac_key is not None

    @property
    def identity_headers(self) -> tuple[str, ...]:
        """Every header that carries identity (lower-case): what the gateway must strip and sign."""
        names = [self.principal_header, *self.attribute_headers]
        if self.tenant_header:
            names.append(self.tenant_header)
        return tuple(sorted(name.lower() for name in names))
