"""What the HTTP adapters share: sending a JSON request, reading a server-sent event stream, and
naming a schema the way both OpenAI (`json_schema.name`) and Anthropic (tool `name`) accept.

Every httpx failure and non-2xx answer leaves this module as an `app.errors.ProviderError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from app.errors import ProviderError
from app.providers.http_errors import provider_error, unreadable_body

_UNSAFE_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def safe_schema_name(name: str) -> str:
    """`name` reduced to `[a-zA-Z0-9_-]{1,64}`, the rule for OpenAI schema names and Anthropic tool names."""
    return _UNSAFE_NAME_CHARS.sub("_", name)[:64] or "output"


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: the optional `event:` name and the joined `data:` lines."""

    event: str | None
    data: str

    def json(self, model: str) -> dict[str, Any]:
        """The data as a JSON object; anything else is a ProviderResponseError."""
        try:
            payload = json.loads(self.data)
        except ValueError as exc:
            raise unreadable_body(model, 200, self.data, "event data is not JSON") from exc
        if not isinstance(payload, dict):
            raise unreadable_body(model, 200, self.data, "event data is not a JSON object")
        return payload


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    *,
    model: str,
    secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """POST `body` and return the JSON object answered, or raise the matching ProviderError."""
    try:
        response = await client.post(url, json=body, headers=dict(headers))
    except httpx.HTTPError as exc:
        raise provider_error(model, exc, secrets=secrets) from exc
    if not response.is_success:
        raise provider_error(model, response, secrets=secrets)
    try:
        payload = response.json()
    except ValueError as exc:
        raise unreadable_body(model, response.status_code, response.text, "not JSON") from exc
    if not isinstance(payload, dict):
        raise unreadable_body(model, response.status_code, response.text, "not a JSON object")
    return payload


async def stream_events(
    client: httpx.AsyncClient,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    *,
    model: str,
    secrets: Sequence[str] = (),
) -> AsyncIterator[SSEEvent]:
    """POST `body` and yield the server-sent events of the answer as they arrive.

    A connection dropped mid-stream surfaces as ProviderConnectionError, a stalled one as ProviderTimeout
    (the client's read timeout applies between chunks, not to the whole stream).
    """
    try:
        async with client.stream("POST", url, json=body, headers=dict(headers)) as response:
            if not response.is_success:
                await response.aread()
                raise provider_error(model, response, secrets=secrets)
            async for event in _parse_sse(response.aiter_lines()):
                yield event
    except httpx.HTTPError as exc:
        raise provider_error(model, exc, secrets=secrets) from exc


def stream_ended_early(model: str, what: str) -> ProviderError:
    """A stream that closed cleanly but without its terminator (`[DONE]`, `message_stop`)."""
    return unreadable_body(model, 200, "", f"the stream ended before {what}")


async def _parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """The SSE framing: `event:` and `data:` fields, events separated by a blank line, `:` comments."""
    event: str | None = None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = None, []
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    if data:
        yield SSEEvent(event, "\n".join(data))
