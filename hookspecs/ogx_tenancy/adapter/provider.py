"""The module OGX's ``module:`` mechanism imports for ``module: ogx_tenancy.adapter``.

OGX 1.5 (``ogx.core.distribution.get_external_providers_from_module``) imports
``<module>.provider`` and calls ``get_provider_spec()``. The only provider of ours loaded this way is
the batches provider (``batches_provider``); prompts, connectors and admin use the external-API
mechanism instead, because OGX does not accept providers for those internal APIs otherwise.
"""

from __future__ import annotations

from ogx_api import ProviderSpec

from .batches_provider import provider_spec


def get_provider_spec() -> ProviderSpec:
    return provider_spec()
