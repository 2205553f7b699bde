"""The `model` label: a bounded set of values, whatever model strings callers send.

A call may name any `provider/anything` (an OpenAI-compatible endpoint serves whatever it serves), so
a label per name would let callers grow the series without bound. The label is the model's name when
the operator configured it (an exact entry of the price table, bundled or CONVEYOR_PRICE_TABLE, or the
default and embedding models), without any `?options` suffix; any other name becomes `<provider>/other`
for a provider prefix this process knows, else `other`. At most (configured models + providers + 1)
values, fixed at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.metrics.families import SEP

OTHER = "other"


class ModelLabels:
    def __init__(self, configured: Iterable[str], prefixes: Iterable[str]) -> None:
        self._configured = frozenset(name for name in configured if SEP not in name)
        self._prefixes = frozenset(prefixes)
        self._seen: dict[str, str] = {}  # memo, bounded by the caller's distinct names: cap it below

    def __call__(self, model: str) -> str:
        label = self._seen.get(model)
        if label is None:
            label = self._label(model)
            if len(self._seen) < 10_000:
                self._seen[model] = label
        return label

    def _label(self, model: str) -> str:
        base = model.partition("?")[0]  # `name?options` bills as `name` (PriceTable), and counts as it
        if base in self._configured:
            return base
        prefix, slash, _ = model.partition("/")
        return f"{prefix}/{OTHER}" if slash and prefix in self._prefixes else OTHER

    @classmethod
    def of(cls, settings, prices, prefixes: Iterable[str]) -> ModelLabels:  # noqa: ANN001 - Settings, PriceTable
        """From the settings' default models and the price table's exact (non-pattern) names."""
        names = [price.name for price in prices.models() if not price.is_pattern]
        return cls([*names, settings.default_model, settings.embedding_model], prefixes)
