"""Every test of the suite, for ``ogx-tenancy-conformance list`` and the documentation test."""

from __future__ import annotations

from .marks import TestSpec, registered_specs


def catalogue() -> list[TestSpec]:
    """Every test spec of every suite (importing the suites declares them)."""
    from .deployment import deployment_tests  # noqa: F401
    from .suites import headers, identity, storage  # noqa: F401

    return registered_specs()
