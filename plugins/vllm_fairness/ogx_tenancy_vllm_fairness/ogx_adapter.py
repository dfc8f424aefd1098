"""Every OGX 1.5 internal this plugin relies on, in one place: the ``remote::vllm-tenancy`` provider.

The provider is OGX's own vLLM adapter with one change: every call it makes upstream carries the
merged headers of all installed ogx-tenancy plugins for the user the call is made for (or for no
user: start-up model refresh, health). How it hooks in, and what of OGX that relies on (each pinned
by ``plugins/vllm_fairness/tests/test_ogx_compat.py``):

* **Which call is being made.** Each public method that reaches vLLM is overridden to declare its
  endpoint kind, model and streaming, and computes the headers once, before anything is sent
  (``_declared_call``). They sit in a context variable for the duration of the call.
* **How they are sent — per request, never on the cached client.** OGX caches one OpenAI client per
  (api key, base url), so headers go through:
  - ``OpenAIMixin._get_extra_request_headers()``, whose result OGX passes as ``extra_headers`` on
    chat completions, completions and embeddings;
  - ``AnthropicMixin._anthropic_headers()``, the headers of the ``/v1/messages`` passthrough and of
    ``/v1/messages/count_tokens`` (computed before a stream starts);
  - ``OpenAIMixin._build_httpx_client_kwargs()``, the per-call client of rerank and health;
  - ``client.models.list(extra_headers=...)`` in our own model listing.
* **Errors.** A refused call raises ``TenancyHeadersRefused``, a subclass of OGX's ``ConflictError``
  with status 500: OGX 1.5 answers ``OGXError`` subclasses with their ``status_code`` and message
  (``ogx.core.exceptions.translation``), and answers ``ConflictError`` through an exception handler
  that does not re-raise (``ogx.core.server.server.create_app``). Any other exception is re-raised to
  uvicorn, whose rich traceback rendering blocks the event loop for many seconds: one refused call
  would stall every other request.
* **Loading.** OGX imports ``<module>.provider`` and calls ``get_provider_spec()``, then calls
  ``get_adapter_impl(config, deps)`` of the spec's module (``ogx.core.distribution``, ``resolver``).

A call path that reaches one of the injection points without a declared call (an OGX upgrade
adding one) fails instead of going out without tenancy headers.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import structlog
from ogx.providers.remote.inference.vllm.config import VLLMInferenceAdapterConfig
from ogx.providers.remote.inference.vllm.vllm import VLLMInferenceAdapter
from ogx_api import Api, RemoteProviderSpec
from ogx_api.common.errors import ConflictError
from pydantic import model_validator

from ogx_tenancy import EndpointKind, OutgoingRequest

from .fairness import SCHEDULER_HEADERS
from .outgoing import OutgoingHeadersError, headers_for_call

log = structlog.get_logger("ogx_tenancy.vllm_fairness", plugin="vllm_fairness")

ADAPTER_TYPE = "vllm-tenancy"
PROVIDER_TYPE = f"remote::{ADAPTER_TYPE}"
MODULE = "ogx_tenancy_vllm_fairness.provider"
# OGX's vLLM provider-data validator (only ``vllm_api_token``): nothing a client sends in
# X-OGX-Provider-Data becomes a header of ours.
PROVIDER_DATA_VALIDATOR = "ogx.providers.remote.inference.vllm.VLLMProviderDataValidator"

# The headers of the call in progress (None: no call declared in this context).
_call_headers: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "ogx_tenancy_vllm_call_headers", default=None
)


class TenancyHeadersRefused(ConflictError):
    """``OutgoingHeadersError`` in the form OGX answers cleanly: HTTP 500 with the message (see above
    for why it derives from ``ConflictError``)."""

    status_code = httpx2.codes.INTERNAL_SERVER_ERROR


class TenancyVLLMConfig(VLLMInferenceAdapterConfig):
    """OGX's vLLM provider config, minus what would let anything but the plugins set tenancy headers."""

    @model_validator(mode="after")
    def _no_static_scheduler_headers(self) -> TenancyVLLMConfig:
        if self.fairness_header_attribute:
            raise ValueError(
                "fairness_header_attribute is not used by remote::vllm-tenancy: configure the fairness id in "
                "tenancy.plugins.vllm_fairness instead"
            )
        static = {name.lower() for name in (self.network.headers or {})} if self.network else set()
        reserved = sorted(static.intersection(SCHEDULER_HEADERS))
        if reserved:
            raise ValueError(
                f"network.headers must not set {', '.join(reserved)}: these are computed per call by the "
                "tenancy plugins (tenancy.plugins.vllm_fairness)"
            )
        return self


class TenancyVLLMInferenceAdapter(VLLMInferenceAdapter):
    """OGX's vLLM adapter that sends the tenancy plugins' headers on every upstream call."""

    config: TenancyVLLMConfig

    # -- declaring the call -----------------------------------------------------------------------

    @contextmanager
    def _declared_call(
        self, endpoint: EndpointKind, model: str | None, stream: bool | None
    ) -> Iterator[dict[str, str]]:
        spec = getattr(self, "__provider_spec__", None)
        request = OutgoingRequest(
            provider_type=spec.provider_type if spec is not None else PROVIDER_TYPE,
            provider_id=getattr(self, "__provider_id__", None) or ADAPTER_TYPE,
            endpoint=endpoint,
            model=model,
            stream=bool(stream),
        )
        try:
            headers = headers_for_call(request)
        except OutgoingHeadersError as refused:
            raise TenancyHeadersRefused(str(refused)) from None
        token = _call_headers.set(headers)
        try:
            yield headers
        finally:
            _call_headers.reset(token)

    @staticmethod
    def _current_call_headers() -> dict[str, str]:
        headers = _call_headers.get()
        if headers is None:
            raise RuntimeError(
                "remote::vllm-tenancy: an upstream call was made without a declared endpoint, so its tenancy "
                "headers are unknown; the installed OGX calls vLLM in a way this plugin does not handle"
            )
        return headers

    # -- every public method that reaches vLLM -----------------------------------------------------

    async def openai_chat_completion(self, params: Any) -> Any:
        with self._declared_call(EndpointKind.CHAT, params.model, params.stream):
            return await super().openai_chat_completion(params)

    async def openai_completion(self, params: Any) -> Any:
        with self._declared_call(EndpointKind.COMPLETIONS, params.model, params.stream):
            return await super().openai_completion(params)

    async def openai_embeddings(self, params: Any) -> Any:
        with self._declared_call(EndpointKind.EMBEDDINGS, params.model, False):
            return await super().openai_embeddings(params)

    async def anthropic_messages(self, params: Any) -> Any:
        with self._declared_call(EndpointKind.MESSAGES, params.model, params.stream):
            return await super().anthropic_messages(params)

    async def anthropic_count_tokens(self, params: Any) -> Any:
        with self._declared_call(EndpointKind.MESSAGES, params.model, False):
            return await super().anthropic_count_tokens(params)

    async def rerank(self, request: Any) -> Any:
        with self._declared_call(EndpointKind.RERANK, request.model, False):
            return await super().rerank(request)

    async def health(self) -> Any:
        with self._declared_call(EndpointKind.HEALTH, None, False):
            return await super().health()

    async def list_provider_model_ids(self) -> list[str]:
        with self._declared_call(EndpointKind.MODELS, None, False) as headers:
            return [model.id async for model in self.client.models.list(extra_headers=headers)]

    async def check_model_availability(self, model: str) -> bool:
        if self.config.auth_credential:
            # OGX's vLLM adapter makes no upstream call when a token is configured
            return await super().check_model_availability(model)
        model_ids = list(await self.list_provider_model_ids())
        if model in model_ids:
            return True
        raise ValueError(f"Model '{model}' not found. Available models: {model_ids}")

    # -- where OGX lets per-call headers in -----------------------------------------------------

    def _get_extra_request_headers(self) -> dict[str, str] | None:
        return dict(self._current_call_headers())

    def _anthropic_headers(self) -> dict[str, str]:
        headers = self._current_call_headers()
        return {**super()._anthropic_headers(), **headers}

    def _build_httpx_client_kwargs(self, default_timeout: float | None = None) -> dict[str, Any]:
        kwargs = super()._build_httpx_client_kwargs(default_timeout)
        headers = _call_headers.get()
        # None inside the /v1/messages stream generator, which runs after the call returned: its
        # request headers already came from _anthropic_headers.
        if headers:
            kwargs["headers"] = {**(kwargs.get("headers") or {}), **headers}
        return kwargs


def get_provider_spec() -> RemoteProviderSpec:
    """What OGX needs to load ``remote::vllm-tenancy`` from ``module: ogx_tenancy_vllm_fairness``."""
    return RemoteProviderSpec(
        api=Api.inference,
        adapter_type=ADAPTER_TYPE,
        provider_type=PROVIDER_TYPE,
        pip_packages=[],
        module=MODULE,
        config_class=f"{TenancyVLLMConfig.__module__}.{TenancyVLLMConfig.__qualname__}",
        provider_data_validator=PROVIDER_DATA_VALIDATOR,
        description="OGX's vLLM adapter sending the ogx-tenancy plugins' headers (fairness id, objective) on "
        "every upstream call",
    )


async def get_adapter_impl(config: TenancyVLLMConfig, _deps: Any) -> TenancyVLLMInferenceAdapter:
    """Build the adapter; refuses to start outside ``ogx-tenancy run``, where no plugin could be asked."""
    from ogx_tenancy import host

    try:
        tenancy = host.current()
    except RuntimeError:
        raise RuntimeError(
            f"{PROVIDER_TYPE} needs the ogx-tenancy host to know who each call is for: start the server with "
            "`ogx-tenancy run CONFIG`, not `ogx run`"
        ) from None
    if not any("ogx_tenancy_extra_request_headers" in info.hooks for info in tenancy.manager.plugins()):
        log.warning("no active plugin adds outgoing headers: calls to vLLM carry no fairness id",
                    provider_type=PROVIDER_TYPE)
    impl = TenancyVLLMInferenceAdapter(config=config)
    await impl.initialize()
    return impl
