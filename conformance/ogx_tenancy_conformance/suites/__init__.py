"""The plugin-level suites, one per hook family, and the deployment-level suite.

Subclass a suite in your tests and provide its fixtures (see each class), or run
``ogx-tenancy-conformance plugin NAME`` with no code.
"""

from .headers import HeaderSuite
from .identity import IdentitySuite
from .storage import StorageSuite

__all__ = ["HeaderSuite", "IdentitySuite", "StorageSuite"]
