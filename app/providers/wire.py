"""What the HTTP adapters share: sending a JSON request, reading a server-sent event stream, and
naming a schema the way both OpenAI (`json_schema.name`) and Anthropic (tool `name`) accept.

Requests go through the aiohttp session of a `ProviderHTTPClient` (why: `app.providers.http_client`);
every transport failure and non-2xx answer leaves this module as an `app.errors.ProviderError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from app.errors import ProviderError
from app.providers.http_client import ProviderHTTPClient
from app.providers.http_errors import error_for_status, provider_error, unreadable_body

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
    client: ProviderHTTPClient,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    *,
    model: str,
    secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """POST `body` and return the JSON object answered, or raise the matching ProviderError."""
    try:
        async with _post(client, url, body, headers) as response:
            raw = await response.read()
            if not 200 <= response.status < 300:
                raise error_for_status(model, response.status, _text(raw), headers=response.headers, secrets=secrets)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise provider_error(model, exc, secrets=secrets) from exc
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise unreadable_body(model, response.status, _text(raw), "not JSON") from exc
    if not isinstance(payload, dict):
        raise unreadable_body(model, response.status, _text(raw), "not a JSON object")
    return payload


async def stream_events(
    client: ProviderHTTPClient,
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
        async with _post(client, url, body, headers) as response:
            if not 200 <= response.status < 300:
                raw = await response.read()
                raise error_for_status(model, response.status, _text(raw), headers=response.headers, secrets=secrets)
            async for event in _parse_sse(split_lines(response.content.iter_any())):
                yield event
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise provider_error(model, exc, secrets=secrets) from exc


def _post(
    client: ProviderHTTPClient, url: str, body: Mapping[str, Any], headers: Mapping[str, str]
) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
    # Serialised as httpx's `json=` did: compact, UTF-8, and NaN/Infinity refused rather than sent.
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    target = URL(url)
    proxy, proxy_auth = client.proxy_for(target)
    return client.session().post(
        target,
        data=data,
        headers={**headers, "Content-Type": "application/json"},
        timeout=client.wire_timeout,
        allow_redirects=False,
        proxy=proxy,
        proxy_auth=proxy_auth,
    )


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


async def split_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The lines of a body arriving in chunks, without their `\n` or `\r\n`. Split here rather than
    with aiohttp's `readline`, which refuses lines longer than its buffer (64 KiB)."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield _text(line.removesuffix(b"\r"))
    if pending:
        yield _text(pending.removesuffix(b"\r"))


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
