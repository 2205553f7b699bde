"""What a call costs: list prices per model from a data file, turned into a `Cost` per attempt.

The bundled `prices.json` holds public list prices (USD per million tokens) keyed by the full
`provider/model` name; a deployment can point `price_table_path` at its own file. Reasoning tokens
are billed as output tokens and are already counted in `Usage.output_tokens`, so they are not added
again.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.results import Cost
from app.providers.base import Usage
from app.providers.custom import CustomModelConfig

log = logging.getLogger(__name__)

BUNDLED_PRICES = Path(__file__).with_name("prices.json")
_FIELDS = ("input_per_million", "output_per_million", "hosting_provider", "location")


@dataclass(frozen=True)
class ModelPrice:
    """One entry of the table; `name` may be a glob pattern such as `fake/*`."""

    name: str
    input_per_million: float
    output_per_million: float
    hosting_provider: str
    location: str
    # Through the provider's batch API; None: half the synchronous price (OpenAI's and Anthropic's rule).
    batch_input_per_million: float | None = None
    batch_output_per_million: float | None = None

    @property
    def input_cost_per_token(self) -> float:
        return self.input_per_million / 1_000_000

    @property
    def output_cost_per_token(self) -> float:
        return self.output_per_million / 1_000_000

    @property
    def is_pattern(self) -> bool:
        return any(ch in self.name for ch in "*?[")


class PriceTable:
    """Prices by model name: exact name, then name without `?query`, then glob patterns, else free."""

    def __init__(self, prices: list[ModelPrice]) -> None:
        self._exact = {p.name: p for p in prices if not p.is_pattern}
        self._patterns = [p for p in prices if p.is_pattern]
        self._warned: set[str] = set()  # log each unknown model once, not once per call

    @classmethod
    def from_path(cls, path: str | Path | None = None) -> PriceTable:
        """Load a price file; None or "" means the bundled one. Raises ValueError on a malformed file."""
        source = Path(path) if path else BUNDLED_PRICES
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read price table {source}: {err}") from err
        return cls.from_mapping(data, source=str(source))

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "<mapping>") -> PriceTable:
        if not isinstance(data, dict):
            raise ValueError(f"price table {source}: expected an object keyed by model name")
        return cls([_parse_entry(name, entry, source) for name, entry in data.items()])

    def lookup(self, model_name: str) -> ModelPrice | None:
        names = (model_name, model_name.split("?", 1)[0])
        for name in names:
            if name in self._exact:
                return self._exact[name]
        for price in self._patterns:
            if any(fnmatch.fnmatchcase(name, price.name) for name in names):
                return price
        return None

    def cost(self, model_name: str, usage: Usage, platform_fee_rate: float = 0.0) -> Cost:
        """USD for `usage` on `model_name`; the platform fee is a fraction of the generation cost."""
        price = self.lookup(model_name)
        if price is None:
            if model_name not in self._warned:
                self._warned.add(model_name)
                log.warning("no price for model %r: its calls are recorded at zero cost", model_name)
            return Cost()
        generation = (
            usage.input_tokens * price.input_per_million + usage.output_tokens * price.output_per_million
        ) / 1_000_000
        return Cost(generation=generation, platform=generation * platform_fee_rate)

    def batch_cost(self, model_name: str, usage: Usage, platform_fee_rate: float = 0.0) -> Cost:
        """USD for `usage` answered through the provider's batch API: the table's batch price, else 50%."""
        price = self.lookup(model_name)
        if price is None:
            return self.cost(model_name, usage, platform_fee_rate)
        per_input = price.batch_input_per_million
        per_output = price.batch_output_per_million
        per_input = price.input_per_million / 2 if per_input is None else per_input
        per_output = price.output_per_million / 2 if per_output is None else per_output
        generation = (usage.input_tokens * per_input + usage.output_tokens * per_output) / 1_000_000
        return Cost(generation=generation, platform=generation * platform_fee_rate)

    def set_price(self, price: ModelPrice) -> None:
        """Add or replace an exact-name price at run time (custom models' prices, as workers load them)."""
        if price.is_pattern:
            raise ValueError(f"set_price takes an exact model name, not the pattern {price.name!r}")
        self._exact[price.name] = price
        self._warned.discard(price.name)

    def set_custom_model_price(self, config: CustomModelConfig) -> None:
        """A custom model's own prices (per token in its config), as a worker loads the model."""
        self.set_price(
            ModelPrice(
                name=config.model_name,
                input_per_million=config.input_cost_per_token * 1_000_000,
                output_per_million=config.output_cost_per_token * 1_000_000,
                hosting_provider="custom",
                location="custom",
            )
        )

    def models(self) -> list[ModelPrice]:
        """Every entry, exact names first then patterns, each sorted by name (for `/v2/models`)."""
        return sorted(self._exact.values(), key=lambda p: p.name) + sorted(self._patterns, key=lambda p: p.name)


def _parse_entry(name: str, entry: Any, source: str) -> ModelPrice:
    if not isinstance(entry, dict) or any(key not in entry for key in _FIELDS):
        raise ValueError(f"price table {source}: {name!r} needs the fields {', '.join(_FIELDS)}")
    prices = (entry["input_per_million"], entry["output_per_million"])
    if not all(isinstance(p, int | float) and not isinstance(p, bool) and p >= 0 for p in prices):
        raise ValueError(f"price table {source}: {name!r} prices must be non-negative numbers")
    batch = [entry.get(key) for key in ("batch_input_per_million", "batch_output_per_million")]
    if not all(p is None or (isinstance(p, int | float) and not isinstance(p, bool) and p >= 0) for p in batch):
        raise ValueError(f"price table {source}: {name!r} batch prices must be non-negative numbers")
    return ModelPrice(
        name=name,
        input_per_million=float(prices[0]),
        output_per_million=float(prices[1]),
        hosting_provider=str(entry["hosting_provider"]),
        location=str(entry["location"]),
        batch_input_per_million=None if batch[0] is None else float(batch[0]),
        batch_output_per_million=None if batch[1] is None else float(batch[1]),
    )
