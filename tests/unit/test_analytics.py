"""The analytics query string: defaults, checks, field aliases, and the cost string."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.errors import BadRequest
from app.services.analytics import UsageRequest, format_usd, month_start, next_month_start, usage_query
from app.store.analytics import Granularity

NOW = datetime(2025, 12, 17, 15, 4, 5, 123456, tzinfo=UTC)


def test_defaults_are_the_current_utc_month_by_day():
    query = usage_query("p", UsageRequest(), now=NOW)
    assert query.start == datetime(2025, 12, 1, tzinfo=UTC)
    assert query.end == datetime(2026, 1, 1, tzinfo=UTC)  # December rolls over to January
    assert query.granularity is Granularity.day
    assert query.columns == () and query.group_by == ()


def test_month_start_uses_utc_not_the_local_offset():
    # 00:30 on 1 March at +02:00 is still 28 February in UTC
    local = datetime(2025, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert month_start(local) == datetime(2025, 2, 1, tzinfo=UTC)
    assert next_month_start(local) == datetime(2025, 3, 1, tzinfo=UTC)


def test_naive_dates_are_utc_and_offsets_are_converted():
    request = UsageRequest(
        from_date=datetime(2025, 1, 1), to_date=datetime(2025, 1, 2, 2, tzinfo=timezone(timedelta(hours=2)))
    )
    query = usage_query("p", request, now=NOW)
    assert query.start == datetime(2025, 1, 1, tzinfo=UTC)
    assert query.end == datetime(2025, 1, 2, tzinfo=UTC)


def test_field_aliases_map_to_columns_once():
    request = UsageRequest(fields=("completion_tokens", "output_tokens", "prompt_tokens", "prompt_tokens"))
    assert usage_query("p", request, now=NOW).columns == ("output_tokens", "input_tokens")


@pytest.mark.parametrize(
    ("request_", "field", "words"),
    [
        (UsageRequest(fields=("total_tokens", "latency")), "fields", "'latency'"),
        (UsageRequest(granularity="week"), "granularity", "minute, hour, day, month, year"),
        (UsageRequest(group_by=("cost",)), "group_by", "'cost'"),
        (UsageRequest(group_by=("total_tokens",), fields=("total_tokens",)), "group_by", "'total_tokens'"),
        (UsageRequest(group_by=('a"b',)), "group_by", "quotes"),
        (UsageRequest(group_by=("",)), "group_by", "1 to 200"),
        (UsageRequest(from_date=datetime(2025, 2, 1), to_date=datetime(2025, 1, 1)), "to_date", "before from_date"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_parameter(request_, field, words):
    with pytest.raises(BadRequest) as raised:
        usage_query("p", request_, now=NOW)
    assert raised.value.field_name == field
    assert words in raised.value.detail and raised.value.detail.startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0.0, "0"), (-0.0, "0"), (0.0123, "0.0123"), (1.2e-05, "0.000012"), (3.0, "3"), (12.5, "12.5"), (1e-12, "0")],
)
def test_cost_is_a_plain_decimal_string(amount, text):
    assert format_usd(amount) == text
