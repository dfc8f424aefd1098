"""ogx-tenancy-maas: the caller's identity from Models-as-a-Service gateway headers, verified.

Gateways and tests sign identity headers with ``sign``::

    from ogx_tenancy_maas import sign
    headers = {"X-MaaS-Username": "alice", "X-MaaS-Group": '["team-a"]', "X-MaaS-Subscription": "gold"}
    headers |= sign(headers, key)
"""

from importlib.metadata import PackageNotFoundError, version

from .settings import MaasSettings
from .trust import DEFAULT_SIGNED_HEADERS, canonical_message, sign

try:
    __version__ = version("ogx-tenancy-maas")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = ["DEFAULT_SIGNED_HEADERS", "MaasSettings", "__version__", "canonical_message", "sign"]
