"""`CONVEYOR_RATE_LIMITS` parsing, glob matching, and the token estimate (no I/O)."""

from __future__ import annotations

import pytest

from app.providers.base import provider_key_id
from app.ratelimit import (
    DEFAULT_OUTPUT_TOKENS,
    ModelLimits,
    RateLimitConfig,
    RateLimitConfigError,
    estimate_tokens,
)

CONFIG = """{
  "openai/gpt-4o-mini": {"rpm": 5000, "tpm": 2000000, "concurrency": 200},
  "openai/*": {"rpm": 500},
  "openai/gpt-4o*": {"rpm": 1000, "tpm": null},
  "fake/*": {"rpm": 30000},
  "*": {},
  "openai/gpt-4o-mini|abc123": {"rpm": 10}
}"""


def test_the_most_specific_rule_wins():
    config = RateLimitConfig.parse(CONFIG)
    assert config.for_model("openai/gpt-4o-mini") == ModelLimits(rpm=5000, tpm=2000000, concurrency=200)
    assert config.for_model("openai/gpt-4o-2024-08-06") == ModelLimits(rpm=1000)  # more literal than openai/*
    assert config.for_model("openai/o3") == ModelLimits(rpm=500)
    assert config.for_model("fake/bench?latency_ms=200") == ModelLimits(rpm=30000)  # '*' spans '/' and '?'
    assert config.for_model("anthropic/claude-sonnet-4") == ModelLimits()  # `{}`: tracked, no budget


def test_a_rule_for_a_provider_key_beats_the_model_rule():
    config = RateLimitConfig.parse(CONFIG)
    assert config.for_model("openai/gpt-4o-mini", "abc123") == ModelLimits(rpm=10)
    assert config.for_model("openai/gpt-4o-mini", "other") == ModelLimits(rpm=5000, tpm=2000000, concurrency=200)


def test_unmatched_models_are_not_limited():
    config = RateLimitConfig.parse('{"openai/*": {"rpm": 500}}')
    assert config.for_model("anthropic/claude-sonnet-4") is None
    assert config.for_model("openai") is None
    assert RateLimitConfig.parse("").for_model("openai/gpt-4o") is None
    assert RateLimitConfig.parse("  ").for_model("openai/gpt-4o") is None
    assert RateLimitConfig.parse(None).for_model("openai/gpt-4o") is None


def test_equally_specific_rules_keep_the_written_order():
    config = RateLimitConfig.parse('{"a/?x": {"rpm": 1}, "a/x?": {"rpm": 2}}')
    assert config.for_model("a/xx") == ModelLimits(rpm=1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", ["CONVEYOR_RATE_LIMITS is not valid JSON"]),
        ('["openai/gpt-4o"]', ["must be a JSON object"]),
        ('{"openai/gpt-4o": 500}', ["'openai/gpt-4o'", "limits must be an object"]),
        ('{"openai/gpt-4o": {"rpm": -5}}', ["'openai/gpt-4o'", "'rpm'", "positive integer", "-5"]),
        ('{"openai/gpt-4o": {"tpm": 0}}', ["'openai/gpt-4o'", "'tpm'", "0"]),
        ('{"openai/gpt-4o": {"concurrency": 2.5}}', ["'openai/gpt-4o'", "'concurrency'", "2.5"]),
        ('{"openai/gpt-4o": {"rpm": "500"}}', ["'openai/gpt-4o'", "'rpm'", "'500'"]),
        ('{"openai/gpt-4o": {"rpm": true}}', ["'openai/gpt-4o'", "'rpm'", "True"]),
        ('{"openai/gpt-4o": {"rpm": 5, "rps": 1}}', ["'openai/gpt-4o'", "unknown key 'rps'"]),
        ('{"": {"rpm": 5}}', ["must not be empty"]),
        ('{"a|b|c": {"rpm": 5}}', ["'a|b|c'", "provider key id"]),
    ],
)
def test_bad_configuration_names_the_model_and_the_key(raw, expected):
    with pytest.raises(RateLimitConfigError) as caught:
        RateLimitConfig.parse(raw)
    for fragment in expected:
        assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)  # pydantic turns it into a settings validation error


def test_token_estimate_is_a_quarter_of_the_characters_plus_the_output():
    assert estimate_tokens("x" * 400, 100) == 200
    assert estimate_tokens("x" * 401, 0) == 101  # rounded up
    assert estimate_tokens("x" * 40, None) == 10 + DEFAULT_OUTPUT_TOKENS
    assert estimate_tokens("", 0) == 1  # never zero: every request counts


def test_provider_key_ids_are_short_stable_and_distinct():
    assert provider_key_id("sk-one") == provider_key_id("sk-one")
    assert provider_key_id("sk-one") != provider_key_id("sk-two")
    assert len(provider_key_id("sk-one")) == 12 and "sk-one" not in provider_key_id("sk-one")
    assert provider_key_id("") == ""
