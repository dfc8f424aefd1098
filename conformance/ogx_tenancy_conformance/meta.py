"""The suite's identity: its distribution version and its suite version.

``SUITE_VERSION`` changes whenever a test is added, removed or made stricter (minor) or a test id
or capability name changes meaning (major). Test ids never change within a major version, so an
xfail file written for ``1.x`` keeps working; pin ``ogx-tenancy-conformance`` to keep the suite fixed.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

SUITE_VERSION = "1.0"

FAMILIES = ("identity", "storage", "headers", "deployment")


def distribution_version(name: str = "ogx-tenancy-conformance") -> str:
    """The installed version of a distribution, or ``"not installed"``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
