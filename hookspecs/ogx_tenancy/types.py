"""Shared types of the hook contract: identities, request views and the errors plugins raise.

Nothing here imports OGX or any plugin; plugin authors depend on these types alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

# OGX's attribute categories. Plugins may use others; OGX's own conditions accept any name.
ATTRIBUTE_CATEGORIES = ("roles", "teams", "projects", "namespaces")


def _freeze_attributes(attributes: Mapping[str, Iterable[str]] | None) -> dict[str, tuple[str, ...]]:
    frozen: dict[str, tuple[str, ...]] = {}
    for category, values in (attributes or {}).items():
        if not isinstance(category, str) or not category:
            raise TypeError(f"attribute category must be a non-empty string, got {category!r}")
        if isinstance(values, str):
            raise TypeError(f"attribute category {category!r} must hold a list of strings, not a string")
        seen: dict[str, None] = {}
        for value in values:
            if not isinstance(value, str):
                raise TypeError(f"attribute values in {category!r} must be strings")
            seen.setdefault(value, None)
        if seen:
            frozen[category] = tuple(seen)
    return frozen


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: OGX's principal, attribute categories and tenant.

    An identity hook may return a *partial* identity — attributes without a principal — to add to
    what another plugin established; the host merges them (see ``ogx_tenancy.merge``). The merged
    identity always has a principal.

    :param principal: the user's name as OGX records it as owner of what they create.
    :param attributes: category -> values (``teams``, ``roles``, ``projects``, ``namespaces`` …);
        values are de-duplicated in order and stored as tuples so no request can mutate another's.
    :param tenant_id: the hard partition; ``None`` when the deployment has no tenants.
    """

    principal: str | None = None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tenant_id: str | None = None

    def __post_init__(self) -> None:
        if self.principal is not None and (not isinstance(self.principal, str) or not self.principal):
            raise TypeError("principal must be a non-empty string or None")
        if self.tenant_id is not None and (not isinstance(self.tenant_id, str) or not self.tenant_id):
            raise TypeError("tenant_id must be a non-empty string or None")
        object.__setattr__(self, "attributes", _freeze_attributes(self.attributes))

    def __hash__(self) -> int:
        return hash((self.principal, tuple(self.attributes.items()), self.tenant_id))

    def attributes_as_lists(self) -> dict[str, list[str]]:
        """The attributes in OGX's ``dict[str, list[str]]`` form."""
        return {category: list(values) for category, values in self.attributes.items()}


class EndpointKind(StrEnum):
    """What an outgoing inference call is for."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    MESSAGES = "messages"
    RERANK = "rerank"
    MODELS = "models"
    HEALTH = "health"


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    """A call an inference provider is about to make upstream (to vLLM, llm-d, …).

    :param provider_type: OGX provider type, e.g. ``remote::vllm``.
    :param provider_id: the provider's id in the run config.
    :param endpoint: the kind of call.
    :param model: the upstream model id, when the call is for one model.
    :param stream: whether the response is streamed.
    """

    provider_type: str
    provider_id: str
    endpoint: EndpointKind
    model: str | None = None
    stream: bool = False


class RequestHeaders:
    """The headers of an incoming request exactly as received: every value of every name.

    Names are case-insensitive. ``get_all`` shows duplicates, so a plugin can refuse a header that
    arrived twice instead of believing one copy. Values are decoded as Latin-1 (lossless); use
    ``get_all_raw`` to apply a stricter decoding such as UTF-8.
    """

    __slots__ = ("_first", "_raw", "_repeated")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]):
        self._raw: tuple[tuple[bytes, bytes], ...] = tuple(raw)
        # Built on first use: lower-case name -> first value, and every value of the (rare) names
        # received more than once. This runs on every request, hence the two shapes.
        self._first: dict[bytes, bytes] | None = None
        self._repeated: dict[bytes, list[bytes]] = {}

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> RequestHeaders:
        """Build from text pairs (tests, tools); names and values are encoded as Latin-1."""
        return cls((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs)

    def _index(self) -> dict[bytes, bytes]:
        if self._first is None:
            last = dict(self._raw)
            # ASGI servers send lower-case names; when every name is also unique, dict() is the index
            if len(last) == len(self._raw) and all(map(bytes.islower, last)):
                self._first = last
            else:
                first: dict[bytes, bytes] = {}
                seen: dict[bytes, list[bytes]] = {}
                for name, value in self._raw:
                    key = name.lower()
                    first.setdefault(key, value)
                    seen.setdefault(key, []).append(value)
                self._repeated = {key: values for key, values in seen.items() if len(values) > 1}
                self._first = first
        return self._first

    @staticmethod
    def _key(name: str) -> bytes | None:
        try:
            return name.lower().encode("latin-1")
        except UnicodeEncodeError:  # no header name can hold it
            return None

    def get_all_raw(self, name: str) -> list[bytes]:
        """Every value received for ``name``, as bytes, in arrival order."""
        first = self._index()
        key = self._key(name)
        if key in self._repeated:
            return list(self._repeated[key])
        value = first.get(key)  # type: ignore[arg-type]
        return [] if value is None else [value]

    def get_all(self, name: str) -> list[str]:
        """Every value received for ``name``, decoded as Latin-1, in arrival order."""
        return [value.decode("latin-1") for value in self.get_all_raw(name)]

    def get_single(self, name: str) -> str | None:
        """The one value of ``name``, or None when absent.

        :raises IdentityRejected: (400) when the header arrived more than once.
        """
        first = self._index()
        key = self._key(name)
        if key in self._repeated:
            raise IdentityRejected(400, f"header {name} was sent more than once", header=name)
        value = first.get(key)  # type: ignore[arg-type]
        return None if value is None else value.decode("latin-1")

    def names(self) -> list[str]:
        """The distinct header names received, lower-cased, in first-arrival order."""
        return [name.decode("latin-1") for name in self._index()]

    def raw(self) -> tuple[tuple[bytes, bytes], ...]:
        """The raw ASGI header pairs."""
        return self._raw

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._index()

    def __repr__(self) -> str:  # values may be secrets: show names only
        return f"RequestHeaders(names={self.names()!r})"


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """The view of an incoming HTTP request that identity hooks receive.

    :param method: HTTP method, upper-case.
    :param path: the URL path, without the query string.
    :param client: the socket peer as ``(host, port)``, or None when unknown.
    :param headers: every value of every header, as received.
    """

    method: str
    path: str
    client: tuple[str, int] | None
    headers: RequestHeaders


class IdentityRejected(Exception):
    """Raised by an identity hook to refuse a request.

    The client receives ``status`` with a JSON body in OpenAI's error shape. ``reason`` is shown to
    the client, so it must not echo attribute values or anything the caller should not learn.

    :param status: 400 (malformed), 401 (unauthenticated) or 403 (not allowed from there).
    :param reason: a short, client-safe explanation.
    :param header: the header at fault, when there is one.
    """

    def __init__(self, status: int, reason: str, *, header: str | None = None):
        if status not in (400, 401, 403):
            raise ValueError(f"IdentityRejected status must be 400, 401 or 403, got {status}")
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.header = header

    def to_openai_error(self) -> dict[str, dict[str, str | None]]:
        """The body OpenAI clients expect: ``{"error": {"message", "type", "param", "code"}}``."""
        error_type = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_denied"}
        return {
            "error": {
                "message": self.reason,
                "type": error_type[self.status],
                "param": self.header,
                "code": str(self.status),
            }
        }

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.to_openai_error()).encode()


class HeaderConflict(Exception):
    """Two plugins set the same outgoing header to different values.

    Merged headers must never depend on plugin order, so the host refuses instead of choosing.
    """

    def __init__(self, header: str, plugins: tuple[str, str]):
        super().__init__(
            f"plugins {plugins[0]!r} and {plugins[1]!r} both set outgoing header {header!r} to different values; "
            "configure one of them not to set it"
        )
        self.header = header
        self.plugins = plugins
