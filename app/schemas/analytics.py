"""HTTP model of `GET /analytics/usage` (Opper v2 wire format, see docs/opper-v2-api.md §7)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class UsageItem(BaseModel):
    """One time bucket (and group). Summed `fields` and `group_by` values are extra keys of the item."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "time_bucket": "2025-01-01T00:00:00Z",
                    "cost": "0.0123",
                    "model": "openai/gpt-4o",
                    "total_tokens": 1234,
                }
            ]
        },
    )

    time_bucket: datetime = Field(description="Start of the UTC bucket")
    cost: str = Field(description="USD spent in the bucket (generation + platform), as a decimal string")
