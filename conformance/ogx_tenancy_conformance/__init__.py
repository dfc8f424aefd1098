"""ogx-tenancy-conformance: the suite that ogx-tenancy plugin authors and operators run.

Plugin authors subclass a family's suite (or declare a ``ConformanceProfile`` and run
``ogx-tenancy-conformance plugin NAME``)::

    from ogx_tenancy_conformance import IdentitySuite

    class TestMyGateway(IdentitySuite):
        plugin_name = "my_gateway"
        harness = MyGatewayHarness
"""

from .capabilities import CAPABILITIES, Capability
from .guarantees import CORE_GUARANTEES, Clause, ContractViolation
from .harness import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    ERIN,
    FRANK,
    STANDARD_USERS,
    ConformanceProfile,
    HeaderHarness,
    IdentityHarness,
    StorageHarness,
    TestUser,
)
from .meta import SUITE_VERSION
from .suites import HeaderSuite, IdentitySuite, StorageSuite
from .suites._base import PluginUnderTest

__all__ = [
    "ALICE",
    "BOB",
    "CAPABILITIES",
    "CAROL",
    "CORE_GUARANTEES",
    "DAVE",
    "ERIN",
    "FRANK",
    "STANDARD_USERS",
    "SUITE_VERSION",
    "Capability",
    "Clause",
    "ConformanceProfile",
    "ContractViolation",
    "HeaderHarness",
    "HeaderSuite",
    "IdentityHarness",
    "IdentitySuite",
    "PluginUnderTest",
    "StorageHarness",
    "StorageSuite",
    "TestUser",
]
