"""Typed results of the engine: one record per attempt, one result per call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.providers.base import Usage


@dataclass(frozen=True)
class Cost:
    """USD. `generation` is what the provider charges; `platform` is this service's fee."""

    generation: float = 0.0
    platform: float = 0.0

    @property
    def total(self) -> float:
        return self.generation + self.platform

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.generation + other.generation, self.platform + other.platform)

    def as_opper(self) -> dict[str, float]:
        return {"generation": self.generation, "platform": self.platform, "total": self.total}


@dataclass(frozen=True)
class AttemptRecord:
    """One request to one model. `error_type` is None when the attempt produced the accepted answer."""

    model: str
    attempt: int  # 1-based, per model
    started_at: datetime
    ended_at: datetime
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    output_text: str | None = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error_type is None


@dataclass(frozen=True)
class CallResult:
    """The outcome of a successful call. Exactly one of `message` / `json_payload` is meaningful."""

    model: str  # the model that produced the answer
    message: str | None
    json_payload: Any
    usage: Usage
    cost: Cost
    attempts: tuple[AttemptRecord, ...]
    cached: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def as_opper(self, span_id: str) -> dict[str, Any]:
        """The body of an Opper `/call` response."""
        return {
            "span_id": span_id,
            "message": self.message,
            "json_payload": self.json_payload,
            "cached": self.cached,
            "images": None,
            "usage": self.usage.as_opper(),
            "cost": self.cost.as_opper(),
        }
