"""OGX's Prompts API served by ``PromptService`` through OGX's external-API mechanism.

How OGX 1.5 picks it up (pinned by ``tests/test_ogx_compat_services.py``): the generated
``external_apis_dir`` holds ``prompts.yaml`` naming this module and the ``Prompts`` protocol
(``ogx.core.external.load_external_apis``); ``Api.add("prompts")`` returns the existing member, so
``get_provider_registry`` takes this module's ``available_providers()`` as the prompts registry; the
generated ``providers.prompts`` entry makes ``resolve_impls`` instantiate ``get_provider_impl`` and
put it in place of the built-in ``PromptServiceImpl`` (which still initialises its own table, unused).
OGX keeps its own ``/v1/prompts`` router (``ogx_api.prompts.fastapi_routes``) and calls this class;
OGX's responses provider gets it as ``deps[Api.prompts]``.
"""

from __future__ import annotations

from typing import Any

from ogx_api import (
    Api,
    CreatePromptRequest,
    DeletePromptRequest,
    GetPromptRequest,
    InlineProviderSpec,
    ListPromptsResponse,
    ListPromptVersionsRequest,
    Prompt,
    Prompts,
    ProviderSpec,
    SetDefaultVersionRequest,
    UpdatePromptRequest,
)
from pydantic import BaseModel, ConfigDict

from ogx_tenancy import host
from ogx_tenancy.services.prompts import PromptService, PromptVersion

from .service_errors import ogx_errors

PROVIDER_TYPE = "inline::ogx-tenancy"

__all__ = ["PROVIDER_TYPE", "Prompts", "TenancyPrompts", "available_providers", "get_provider_impl"]


class TenancyPromptsConfig(BaseModel):
    """The generated provider entry's config (nothing to set: the store comes from ``tenancy.storage``)."""

    model_config = ConfigDict(extra="forbid")


def available_providers() -> list[ProviderSpec]:
    """The prompts registry OGX uses while ``prompts.yaml`` is in its external APIs dir."""
    return [
        InlineProviderSpec(
            api=Api.prompts,
            provider_type=PROVIDER_TYPE,
            module=__name__,
            config_class=f"{__name__}.TenancyPromptsConfig",
            api_dependencies=[],
            description="Prompts on the ogx-tenancy store: row-level access, one default per prompt.",
        )
    ]


async def get_provider_impl(config: TenancyPromptsConfig, deps: dict[Api, Any]) -> TenancyPrompts:
    return TenancyPrompts(await PromptService.open(host.open_store))


def _prompt(version: PromptVersion) -> Prompt:
    return Prompt(
        prompt_id=version.prompt_id,
        version=version.version,
        prompt=version.prompt,
        variables=list(version.variables),
        is_default=version.is_default,
    )


class TenancyPrompts(Prompts):
    """OGX's ``Prompts`` protocol on ``PromptService``: request objects in, OGX models out."""

    def __init__(self, service: PromptService):
        self.service = service

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def list_prompts(self) -> ListPromptsResponse:
        with ogx_errors():
            return ListPromptsResponse(data=[_prompt(p) for p in await self.service.list()])

    async def list_prompt_versions(self, request: ListPromptVersionsRequest) -> ListPromptsResponse:
        with ogx_errors():
            return ListPromptsResponse(data=[_prompt(p) for p in await self.service.list_versions(request.prompt_id)])

    async def get_prompt(self, request: GetPromptRequest) -> Prompt:
        with ogx_errors():
            return _prompt(await self.service.get(request.prompt_id, request.version))

    async def create_prompt(self, request: CreatePromptRequest) -> Prompt:
        with ogx_errors():
            return _prompt(await self.service.create(request.prompt, request.variables))

    async def update_prompt(self, request: UpdatePromptRequest) -> Prompt:
        with ogx_errors():
            return _prompt(
                await self.service.update(
                    request.prompt_id,
                    request.prompt,
                    request.version,
                    request.variables,
                    set_as_default=request.set_as_default,
                )
            )

    async def delete_prompt(self, request: DeletePromptRequest) -> None:
        with ogx_errors():
            await self.service.delete(request.prompt_id)

    async def set_default_version(self, request: SetDefaultVersionRequest) -> Prompt:
        with ogx_errors():
            return _prompt(await self.service.set_default(request.prompt_id, request.version))
