"""The plugin's settings block, ``tenancy.plugins.sample_third_party``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class AcmeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: SecretStr = Field(min_length=16, description="HMAC key shared with the Acme gateway")
    max_value_bytes: int = Field(default=1024, ge=16, le=65536, description="longest accepted identity header value")
