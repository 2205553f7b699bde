"""Rate-limit configuration: the `CONVEYOR_RATE_LIMITS` JSON, parsed and validated into dataclasses.

    {"openai/gpt-4o-mini": {"rpm": 5000, "tpm": 2000000, "concurrency": 200},
     "fake/*": {"rpm": 30000},
     "anthropic/*|team-b": {"rpm": 50}}

Keys are model names or `fnmatch` glob patterns (`*`, `?`, `[...]`). A pattern may end in
`|<provider_key_id>` to apply to one provider API key only. A glob is a rule, not a shared budget:
every model it matches gets a budget of its own (per model and provider key), as providers count.

For a model, the most specific matching rule wins: a rule for its provider key beats one without,
then an exact name beats a glob, then the glob with more literal characters, then the longer one.
Each of `rpm`, `tpm` and `concurrency` is optional (a positive integer, or null for no limit); a
rule with none (`{}`) still makes the model coordinate provider 429 pauses across processes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

SETTING = "CONVEYOR_RATE_LIMITS"
KEY_SEPARATOR = "|"
_LIMIT_KEYS = ("rpm", "tpm", "concurrency")
_GLOB_CHARS = frozenset("*?[")
_CACHE_SIZE = 4096
DEFAULT_OUTPUT_TOKENS = 512  # expected output when a request sets no max_output_tokens


class RateLimitConfigError(ValueError):
    """`CONVEYOR_RATE_LIMITS` is not valid; the message names the model and the key at fault."""


@dataclass(frozen=True)
class ModelLimits:
    """Budgets of one model and provider key. None means that dimension is not limited."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None


@dataclass(frozen=True)
class _Rule:
    pattern: str
    limits: ModelLimits
    for_key: bool  # the pattern carries `|<provider_key_id>`
    is_glob: bool

    def matches(self, model_name: str, provider_key_id: str) -> bool:
        subject = f"{model_name}{KEY_SEPARATOR}{provider_key_id}" if self.for_key else model_name
        return fnmatchcase(subject, self.pattern) if self.is_glob else subject == self.pattern

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        literal = sum(1 for char in self.pattern if char not in _GLOB_CHARS)
        return (int(self.for_key), int(not self.is_glob), literal, len(self.pattern))


@dataclass
class RateLimitConfig:
    """Parsed rules; `for_model` answers which limits apply to a model and provider key."""

    rules: Mapping[str, ModelLimits] = field(default_factory=dict)

    def __post_init__(self) -> None:
        compiled = [
            _Rule(p, limits, KEY_SEPARATOR in p, any(c in _GLOB_CHARS for c in p)) for p, limits in self.rules.items()
        ]
        # Stable sort: among equally specific rules the first written wins.
        self._rules = sorted(compiled, key=lambda rule: rule.specificity, reverse=True)
        self._cache: dict[tuple[str, str], ModelLimits | None] = {}

    @classmethod
    def parse(cls, raw: str | None) -> RateLimitConfig:
        """Parse the setting's JSON text; an empty or blank value means no limits anywhere."""
        if raw is None or not raw.strip():
            return cls({})
        try:
            document = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RateLimitConfigError(f"{SETTING} is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise RateLimitConfigError(
                f'{SETTING} must be a JSON object of model name to limits, e.g. {{"openai/gpt-4o": {{"rpm": 500}}}}'
            )
        return cls({pattern: _parse_limits(pattern, value) for pattern, value in document.items()})

    def for_model(self, model_name: str, provider_key_id: str = "") -> ModelLimits | None:
        """The limits of the most specific matching rule, or None when the model is not limited."""
        cache_key = (model_name, provider_key_id)
        if cache_key in self._cache:
            return self._cache[cache_key]
        found = next((rule.limits for rule in self._rules if rule.matches(model_name, provider_key_id)), None)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()  # model names with query strings (fake models) could grow it forever
        self._cache[cache_key] = found
        return found


def _parse_limits(pattern: str, value: Any) -> ModelLimits:
    if not pattern.strip():
        raise RateLimitConfigError(f"{SETTING}: a model name must not be empty")
    if pattern.startswith(KEY_SEPARATOR) or pattern.count(KEY_SEPARATOR) > 1:
        raise RateLimitConfigError(
            f"{SETTING}: model {pattern!r}: write '<model or glob>' or '<model or glob>|<provider key id>'"
        )
    if not isinstance(value, dict):
        raise RateLimitConfigError(
            f'{SETTING}: model {pattern!r}: limits must be an object such as {{"rpm": 500}}, got {value!r}'
        )
    unknown = sorted(set(value) - set(_LIMIT_KEYS))
    if unknown:
        raise RateLimitConfigError(
            f"{SETTING}: model {pattern!r}: unknown key {unknown[0]!r}; the keys are {', '.join(_LIMIT_KEYS)}"
        )
    for key in _LIMIT_KEYS:
        number = value.get(key)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number <= 0):
            raise RateLimitConfigError(
                f"{SETTING}: model {pattern!r}: {key!r} must be a positive integer or null, got {number!r}"
            )
    return ModelLimits(rpm=value.get("rpm"), tpm=value.get("tpm"), concurrency=value.get("concurrency"))


def estimate_tokens(messages_text: str, max_output_tokens: int | None) -> int:
    """Tokens a request will count against a TPM budget, before it is sent.

    Input: about four characters per token (OpenAI's rule of thumb for English; code and other
    scripts run denser, and the per-message framing is ignored). Output: `max_output_tokens` when
    the request sets it, as providers reserve it against TPM; otherwise `DEFAULT_OUTPUT_TOKENS`.
    The estimate is corrected by the actual usage when the permit is released.
    """
    output = DEFAULT_OUTPUT_TOKENS if max_output_tokens is None else max(0, max_output_tokens)
    return max(1, -(-len(messages_text) // 4) + output)
