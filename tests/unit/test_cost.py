import json
import logging

import pytest

from app.engine.cost import PriceTable
from app.engine.results import Cost
from app.providers.base import Usage

MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


@pytest.fixture
def prices() -> PriceTable:
    return PriceTable.from_path(None)


@pytest.mark.parametrize(
    ("model", "generation"),
    [
        ("openai/gpt-4o-mini", 0.15 + 0.60),
        ("openai/gpt-4o", 2.50 + 10.00),
        ("anthropic/claude-3-5-haiku-latest", 0.80 + 4.00),
        ("anthropic/claude-opus-4-0", 15.0 + 75.0),
        ("openai/gpt-4.1-nano?reasoning=low", 0.10 + 0.40),  # query suffix stripped
        ("fake/anything-at-all", 0.5 + 1.5),  # glob entry
        ("fake-anthropic/claude?schema_violation=first", 0.5 + 1.5),
    ],
)
def test_cost_from_list_prices(prices, model, generation):
    cost = prices.cost(model, MILLION, platform_fee_rate=0.1)
    assert cost.generation == pytest.approx(generation)
    assert cost.platform == pytest.approx(generation * 0.1)
    assert cost.total == pytest.approx(generation * 1.1)


def test_small_usage_is_priced_per_token(prices):
    cost = prices.cost("openai/gpt-4o-mini", Usage(input_tokens=1200, output_tokens=300, reasoning_tokens=100))
    assert cost == Cost(generation=pytest.approx((1200 * 0.15 + 300 * 0.6) / 1e6), platform=0.0)


def test_unknown_model_is_free_and_warned_about_once(prices, caplog):
    with caplog.at_level(logging.WARNING, logger="app.engine.cost"):
        first = prices.cost("mystery/model-x", MILLION, 0.2)
        second = prices.cost("mystery/model-x", MILLION, 0.2)
    assert first == second == Cost(0.0, 0.0)
    assert [r.getMessage() for r in caplog.records] == [
        "no price for model 'mystery/model-x': its calls are recorded at zero cost"
    ]


def test_models_lists_every_entry(prices):
    names = [m.name for m in prices.models()]
    assert len(names) == 16 and names[-2:] == ["fake-anthropic/*", "fake/*"] and "fake/demo" in names
    assert {"openai/o3-mini", "openai/o4-mini", "anthropic/claude-3-haiku-20240307"} <= set(names)
    mini = next(m for m in prices.models() if m.name == "openai/gpt-4o-mini")
    assert (mini.hosting_provider, mini.input_cost_per_token) == ("openai", pytest.approx(0.15e-6))


def test_a_settings_path_overrides_the_bundled_table(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "local/*": {
                    "input_per_million": 1,
                    "output_per_million": 2,
                    "hosting_provider": "me",
                    "location": "eu",
                },
            }
        )
    )
    table = PriceTable.from_path(str(path))
    assert table.cost("local/llama", MILLION).generation == pytest.approx(3.0)
    assert table.cost("openai/gpt-4o", MILLION) == Cost()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "cannot read price table"),
        ('{"m": {"input_per_million": 1}}', "'m' needs the fields input_per_million, output_per_million"),
        (
            '{"m": {"input_per_million": -1, "output_per_million": 1, "hosting_provider": "x", "location": "y"}}',
            "'m' prices must be non-negative numbers",
        ),
    ],
)
def test_malformed_price_file_is_refused(tmp_path, content, reason):
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=reason):
        PriceTable.from_path(path)
