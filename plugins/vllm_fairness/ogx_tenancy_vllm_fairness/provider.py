"""The OGX external-provider entry point: ``module: ogx_tenancy_vllm_fairness`` in a run config.

OGX imports this module, calls ``get_provider_spec()`` to learn the provider type
(``remote::vllm-tenancy``) and later ``get_adapter_impl(config, deps)`` to build it. The provider
itself, and everything it relies on inside OGX, is in ``ogx_adapter``.
"""

from .ogx_adapter import get_adapter_impl, get_provider_spec

__all__ = ["get_adapter_impl", "get_provider_spec"]
