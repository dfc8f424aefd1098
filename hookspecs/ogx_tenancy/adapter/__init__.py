"""The OGX host adapter: the only part of ogx-tenancy that imports OGX.

One module per OGX mechanism: ``ogx_bridge`` (request path, config, user), ``prompts_api``,
``connectors_api`` and ``admin_api`` (OGX's external-API mechanism), ``batches_provider`` and
``provider`` (a ``module:`` provider), ``wiring`` (the run config OGX actually runs). Every OGX
internal used is pinned by ``hookspecs/tests/test_ogx_compat*.py`` against the OGX version range
this distribution declares.
"""
