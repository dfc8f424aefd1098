"""Service and store errors as the errors OGX's routers render (status code + OpenAI error body).

OGX renders any ``OGXError`` with its ``status_code``; it renders anything else without one as a
500. Our errors carry ``status``, so every shim translates them here: the resource-specific ones
into OGX's own classes (same messages as OGX's built-ins), the rest into ``TenancyAPIError``.

``TenancyAPIError`` derives from ``ConflictError`` because OGX 1.5 registers a dedicated handler
for it; an error reaching only OGX's generic ``Exception`` handler gets a traceback printed and is
re-raised after the response (the identity middleware then stops it, see ``middleware._serve``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ogx_api import BatchNotFoundError, ConnectorNotFoundError, PromptNotFoundError, PromptVersionNotFoundError
from ogx_api.common.errors import ConflictError

from ogx_tenancy.services import ServiceError
from ogx_tenancy.services.batches import BatchNotFound
from ogx_tenancy.services.connectors import ConnectorNotFound
from ogx_tenancy.services.prompts import PromptNotFound, PromptVersionNotFound
from ogx_tenancy.store import AccessDenied, InvalidRowData, RowConflict, RowNotFound


class TenancyAPIError(ConflictError):
    """An error with the HTTP status our service or store chose, rendered by OGX (any status, not
    only 409: the base class is chosen for OGX's handler, see the module docstring)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status_code = status


@contextmanager
def ogx_errors() -> Iterator[None]:
    """Re-raise service and store errors inside the block as errors OGX renders with their status."""
    try:
        yield
    except PromptVersionNotFound as e:
        raise PromptVersionNotFoundError(e.version, e.prompt_id) from None
    except PromptNotFound as e:
        raise PromptNotFoundError(e.prompt_id) from None
    except ConnectorNotFound as e:
        raise ConnectorNotFoundError(e.connector_id) from None
    except BatchNotFound as e:
        raise BatchNotFoundError(e.batch_id) from None
    except ServiceError as e:
        raise TenancyAPIError(e.status, e.message) from None
    except AccessDenied as e:
        # the store's message names the action and the row id only, never the caller's attributes
        raise TenancyAPIError(AccessDenied.status, f"Permission denied: {e}") from None
    except (RowNotFound, RowConflict, InvalidRowData) as e:
        raise TenancyAPIError(type(e).status, str(e) or type(e).__name__) from None
