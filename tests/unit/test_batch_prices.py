"""Prices of attempts answered through a provider's batch API: the table's batch price, else half."""

from __future__ import annotations

import pytest

from app.engine.cost import PriceTable
from app.providers.base import Usage

ENTRY = {"input_per_million": 2.0, "output_per_million": 8.0, "hosting_provider": "x", "location": "us"}
USAGE = Usage(input_tokens=1_000_000, output_tokens=500_000)


def test_half_the_price_unless_the_table_gives_a_batch_price():
    table = PriceTable.from_mapping(
        {
            "openai/plain": ENTRY,
            "openai/listed": {**ENTRY, "batch_input_per_million": 0.5, "batch_output_per_million": 3.0},
        }
    )
    assert table.cost("openai/plain", USAGE).generation == pytest.approx(6.0)
    assert table.batch_cost("openai/plain", USAGE).generation == pytest.approx(3.0)
    assert table.batch_cost("openai/listed", USAGE, 0.1).generation == pytest.approx(0.5 + 1.5)
    assert table.batch_cost("openai/listed", USAGE, 0.1).platform == pytest.approx(0.2)
    assert table.batch_cost("openai/unknown", USAGE).generation == 0.0


def test_a_bad_batch_price_is_refused_with_the_model_named():
    with pytest.raises(ValueError, match="openai/bad"):
        PriceTable.from_mapping({"openai/bad": {**ENTRY, "batch_input_per_million": -1}})
