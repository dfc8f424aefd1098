"""Compatibility with the installed OGX: every OGX internal ``ogx_adapter`` relies on is pinned here,
and the provider is driven in-process through OGX's own vLLM adapter code against the recording
upstream (a real HTTP server). If an OGX release changes any of it, these tests fail loudly.
"""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace

import pytest
from fairness_helpers import person
from ogx.core.distribution import get_external_providers_from_module
from ogx.core.exceptions.translation import translate_exception
from ogx.core.server import server as ogx_server
from ogx.core.utils.dynamic import instantiate_class_type
from ogx.providers.remote.inference.vllm.vllm import VLLMInferenceAdapter
from ogx.providers.utils.inference.anthropic_mixin import AnthropicMixin
from ogx.providers.utils.inference.openai_mixin import OpenAIMixin
from ogx_api import (
    Api,
    OpenAIChatCompletionRequestWithExtraBody,
    OpenAICompletionRequestWithExtraBody,
    OpenAIEmbeddingsRequestWithExtraBody,
)
from ogx_api.inference import RerankRequest
from ogx_api.messages.models import AnthropicCountTokensRequest, AnthropicCreateMessageRequest
from pydantic import BaseModel, ValidationError
from support.upstream import RecordingUpstream

from ogx_tenancy import Tenancy, acting_as, hookimpl, host
from ogx_tenancy.manager import PluginManager
from ogx_tenancy_vllm_fairness import plugin
from ogx_tenancy_vllm_fairness.fairness import GIE_FAIRNESS_ID, GIE_OBJECTIVE, LLMD_FAIRNESS_ID, LLMD_OBJECTIVE
from ogx_tenancy_vllm_fairness.ogx_adapter import (
    PROVIDER_TYPE,
    TenancyHeadersRefused,
    TenancyVLLMConfig,
    TenancyVLLMInferenceAdapter,
    get_adapter_impl,
    get_provider_spec,
)

# Public coroutine methods of OGX 1.5's vLLM adapter, by what they do upstream. A method OGX adds or
# removes fails test_every_upstream_method_is_covered: decide which group it belongs to.
CALLS_UPSTREAM = {  # each overridden to declare its call
    "openai_chat_completion", "openai_completion", "openai_embeddings", "anthropic_messages",
    "anthropic_count_tokens", "rerank", "health", "list_provider_model_ids", "check_model_availability",
}
CALLS_UPSTREAM_THROUGH_ANOTHER = {  # reach vLLM only through a method above
    "list_models", "register_model", "openai_chat_completions_with_reasoning",
}
NO_UPSTREAM_CALL = {"initialize", "shutdown", "should_refresh_models", "unregister_model"}

SETTINGS = {
    "sources": ["tenant"], "header_names": "both", "system_id": "ogx-system",
    "objective": {"attribute": "teams", "values": {"gold": "premium"}, "default": "standard"},
}
USER = person(principal="alice", tenant="acme", teams=["gold"])
USER_HEADERS = {GIE_FAIRNESS_ID: "acme", LLMD_FAIRNESS_ID: "acme", GIE_OBJECTIVE: "premium", LLMD_OBJECTIVE: "premium"}
SYSTEM_HEADERS = {GIE_FAIRNESS_ID: "ogx-system", LLMD_FAIRNESS_ID: "ogx-system"}


def scheduler_headers(request) -> dict[str, str]:
    names = (GIE_FAIRNESS_ID, LLMD_FAIRNESS_ID, GIE_OBJECTIVE, LLMD_OBJECTIVE)
    return {name: request.header(name) for name in names if request.header(name) is not None}


class Clash:
    @hookimpl
    def ogx_tenancy_extra_request_headers(self, request, identity, settings):
        return {GIE_FAIRNESS_ID: "not-acme"}


def install_host(*others) -> None:
    manager = PluginManager()
    manager.register(plugin, "vllm_fairness")
    for name, other in others:
        manager.register(other, name)
    host.install(Tenancy.from_config({"plugins": {"vllm_fairness": SETTINGS}}, manager=manager))


@pytest.fixture(scope="module")
def upstream():
    with RecordingUpstream() as server:
        yield server


@pytest.fixture
async def adapter(upstream):
    install_host()
    impl = await get_adapter_impl(TenancyVLLMConfig(base_url=upstream.openai_base_url), {})
    # what OGX's resolver sets on every provider it instantiates
    impl.__provider_id__ = "vllm"
    impl.__provider_spec__ = get_provider_spec()
    upstream.clear()
    yield impl
    await impl.shutdown()


async def drain(result):
    if hasattr(result, "__aiter__"):
        return [item async for item in result]
    return result


CHAT = {"model": "test-chat", "messages": [{"role": "user", "content": "hello"}]}
MESSAGE = {"model": "test-chat", "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]}
CALLS = {
    "chat": (lambda a: a.openai_chat_completion(OpenAIChatCompletionRequestWithExtraBody(**CHAT)),
             "POST", "/v1/chat/completions"),
    "chat-stream": (lambda a: a.openai_chat_completion(OpenAIChatCompletionRequestWithExtraBody(**CHAT, stream=True)),
                    "POST", "/v1/chat/completions"),
    "completions": (lambda a: a.openai_completion(OpenAICompletionRequestWithExtraBody(model="test-chat", prompt="p")),
                    "POST", "/v1/completions"),
    "completions-stream": (lambda a: a.openai_completion(
        OpenAICompletionRequestWithExtraBody(model="test-chat", prompt="p", stream=True)), "POST", "/v1/completions"),
    "embeddings": (lambda a: a.openai_embeddings(OpenAIEmbeddingsRequestWithExtraBody(model="test-embed", input=["x"])),
                   "POST", "/v1/embeddings"),
    "messages": (lambda a: a.anthropic_messages(AnthropicCreateMessageRequest(**MESSAGE)), "POST", "/v1/messages"),
    "messages-stream": (lambda a: a.anthropic_messages(AnthropicCreateMessageRequest(**MESSAGE, stream=True)),
                        "POST", "/v1/messages"),
    "count-tokens": (lambda a: a.anthropic_count_tokens(AnthropicCountTokensRequest(
        model="test-chat", messages=MESSAGE["messages"])), "POST", "/v1/messages/count_tokens"),
    "rerank": (lambda a: a.rerank(RerankRequest(model="test-rerank", query="q", items=["a", "b"])), "POST", "/rerank"),
    "health": (lambda a: a.health(), "GET", "/health"),
    "models": (lambda a: a.list_models(), "GET", "/v1/models"),
    "model-check": (lambda a: a.check_model_availability("test-chat"), "GET", "/v1/models"),
    "reasoning": (lambda a: a.openai_chat_completions_with_reasoning(
        OpenAIChatCompletionRequestWithExtraBody(**CHAT, stream=True)), "POST", "/v1/chat/completions"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_every_call_carries_the_users_headers(adapter, upstream, call):
    make, method, path = CALLS[call]
    with acting_as(USER):
        result = await drain(await make(adapter))
    assert result is not None
    (sent,) = upstream.requests()
    assert (sent.method, sent.path) == (method, path)
    assert scheduler_headers(sent) == USER_HEADERS


@pytest.mark.parametrize("call", ["models", "health"])
async def test_calls_for_no_user_carry_the_system_id(adapter, upstream, call):
    make, method, path = CALLS[call]
    await drain(await make(adapter))
    (sent,) = upstream.requests()
    assert (sent.method, sent.path) == (method, path)
    assert scheduler_headers(sent) == SYSTEM_HEADERS


async def test_alternating_users_on_the_cached_client_each_get_their_own_id(adapter, upstream):
    for tenant in ["acme", "globex", "acme", "initech", "globex"]:
        with acting_as(person(tenant=tenant, teams=["silver"])):
            await drain(await CALLS["chat"][0](adapter))
            await drain(await CALLS["messages-stream"][0](adapter))
    sent = upstream.requests()
    assert [r.header(GIE_FAIRNESS_ID) for r in sent] == [
        "acme", "acme", "globex", "globex", "acme", "acme", "initech", "initech", "globex", "globex"]
    assert {r.header(GIE_OBJECTIVE) for r in sent} == {"standard"}


async def test_concurrent_calls_never_borrow_another_callers_headers(adapter, upstream):
    async def call(i: int) -> None:
        tenant = f"tenant-{i % 20}"
        messages = [{"role": "user", "content": tenant}]
        with acting_as(person(principal=f"user-{i}", tenant=tenant)):
            if i % 3 == 0:
                chat = OpenAIChatCompletionRequestWithExtraBody(model="test-chat", messages=messages, stream=i % 2 == 0)
                await drain(await adapter.openai_chat_completion(chat))
            elif i % 3 == 1:
                request = AnthropicCreateMessageRequest(model="test-chat", max_tokens=8, messages=messages, stream=True)
                await drain(await adapter.anthropic_messages(request))
            else:
                await adapter.openai_embeddings(OpenAIEmbeddingsRequestWithExtraBody(model="test-embed", input=tenant))

    await asyncio.gather(*(call(i) for i in range(200)))
    sent = upstream.requests()
    assert len(sent) == 200
    for request in sent:
        body_tenant = request.body["input"] if "input" in request.body else request.body["messages"][0]["content"]
        assert request.header(GIE_FAIRNESS_ID) == body_tenant


async def test_a_conflict_fails_the_call_before_anything_is_sent(upstream):
    install_host(("clash", Clash()))
    impl = await get_adapter_impl(TenancyVLLMConfig(base_url=upstream.openai_base_url), {})
    impl.__provider_id__, impl.__provider_spec__ = "vllm", get_provider_spec()
    upstream.clear()
    with acting_as(USER), pytest.raises(TenancyHeadersRefused, match="'clash' and 'vllm_fairness'"):
        await CALLS["chat"][0](impl)
    assert upstream.requests() == []


async def test_static_network_headers_still_go_out_beside_the_per_call_ones(upstream):
    install_host()
    config = TenancyVLLMConfig(base_url=upstream.openai_base_url, network={"headers": {"X-Static": "yes"}})
    impl = await get_adapter_impl(config, {})
    impl.__provider_id__, impl.__provider_spec__ = "vllm", get_provider_spec()
    upstream.clear()
    with acting_as(USER):
        await drain(await CALLS["chat"][0](impl))
        await drain(await CALLS["rerank"][0](impl))
    for sent in upstream.requests():
        assert sent.header("x-static") == "yes" and scheduler_headers(sent) == USER_HEADERS
    await impl.shutdown()


def test_an_undeclared_upstream_call_fails_instead_of_going_out_without_headers():
    impl = TenancyVLLMInferenceAdapter(config=TenancyVLLMConfig(base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(RuntimeError, match="without a declared endpoint"):
        impl._get_extra_request_headers()
    with pytest.raises(RuntimeError, match="without a declared endpoint"):
        impl._anthropic_headers()


# -- config -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "message"), [
    ({"fairness_header_attribute": "teams"}, "fairness_header_attribute is not used by remote::vllm-tenancy"),
    ({"network": {"headers": {"X-Gateway-Inference-Fairness-Id": "static"}}},
     "network.headers must not set x-gateway-inference-fairness-id"),
    ({"network": {"headers": {"x-llm-d-inference-objective": "x"}}},
     "network.headers must not set x-llm-d-inference-objective"),
])
def test_config_refuses_static_scheduler_headers(config, message):
    with pytest.raises(ValidationError, match=message):
        TenancyVLLMConfig(base_url="http://vllm:8000/v1", **config)


async def test_the_provider_refuses_to_start_outside_ogx_tenancy_run():
    with pytest.raises(RuntimeError, match="start the server with `ogx-tenancy run CONFIG`"):
        await get_adapter_impl(TenancyVLLMConfig(base_url="http://vllm:8000/v1"), {})


# -- OGX internals, pinned ---------------------------------------------------------------------------


def test_ogx_loads_the_provider_from_its_module_name():
    provider = SimpleNamespace(module="ogx_tenancy_vllm_fairness", provider_type=PROVIDER_TYPE)
    registry = get_external_providers_from_module(
        {Api.inference: {}}, SimpleNamespace(providers={"inference": [provider]}), listing=False
    )
    spec = registry[Api.inference][PROVIDER_TYPE]
    assert instantiate_class_type(spec.config_class) is TenancyVLLMConfig
    assert spec.provider_data_validator and instantiate_class_type(spec.provider_data_validator)
    module = __import__(spec.module, fromlist=["get_adapter_impl"])
    assert inspect.iscoroutinefunction(module.get_adapter_impl)


def test_every_upstream_method_is_covered():
    public_coroutines = set()
    for cls in VLLMInferenceAdapter.__mro__:
        if cls in (BaseModel, object):
            continue
        for name, value in vars(cls).items():
            if not name.startswith("_") and (inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value)):
                public_coroutines.add(name)
    assert public_coroutines == CALLS_UPSTREAM | CALLS_UPSTREAM_THROUGH_ANOTHER | NO_UPSTREAM_CALL, (
        "OGX's vLLM adapter changed its public methods: classify each new one in test_ogx_compat.py and declare "
        "its call in ogx_adapter.TenancyVLLMInferenceAdapter if it reaches vLLM"
    )
    for name in CALLS_UPSTREAM:
        assert name in vars(TenancyVLLMInferenceAdapter), f"{name} reaches vLLM but is not overridden"


def test_the_injection_points_exist_with_the_signatures_relied_on():
    assert issubclass(VLLMInferenceAdapter, AnthropicMixin) and issubclass(VLLMInferenceAdapter, OpenAIMixin)
    assert list(inspect.signature(OpenAIMixin._get_extra_request_headers).parameters) == ["self"]
    assert list(inspect.signature(AnthropicMixin._anthropic_headers).parameters) == ["self"]
    assert list(inspect.signature(OpenAIMixin._build_httpx_client_kwargs).parameters) == ["self", "default_timeout"]
    for method in ("openai_chat_completion", "openai_completion", "openai_embeddings"):
        source = inspect.getsource(getattr(OpenAIMixin, method))
        assert 'self._get_extra_request_headers()' in source and '"extra_headers"' in source, method
    assert "self._anthropic_headers()" in inspect.getsource(AnthropicMixin.anthropic_messages)
    assert "self._build_httpx_client_kwargs(" in inspect.getsource(VLLMInferenceAdapter.rerank)
    assert "self._build_httpx_client_kwargs(" in inspect.getsource(VLLMInferenceAdapter.health)


def test_a_refused_call_is_answered_500_with_its_message_by_a_handler_that_does_not_reraise():
    translated = translate_exception(TenancyHeadersRefused("plugins 'a' and 'b' disagree"))
    assert (translated.status_code, translated.detail) == (500, "plugins 'a' and 'b' disagree")
    # OGX registers ConflictError with a specific handler; only the generic Exception handler re-raises
    assert "app.exception_handler(ConflictError)(global_exception_handler)" in inspect.getsource(ogx_server.create_app)
