"""The OGX host adapter: the only part of ogx-tenancy that imports OGX.

Every reliance on an OGX internal lives in ``ogx_bridge`` and is pinned by
``tests/test_ogx_compat.py`` against the OGX version range this distribution declares.
"""
