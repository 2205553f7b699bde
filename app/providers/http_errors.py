"""Turn what went wrong on the HTTP wire into the `ProviderError` subclass a caller can act on.

The fallback chain decides on the class (retry, wait, skip to the next model), so the mapping is
kept in one place and shared by every HTTP adapter. Messages name the model, the HTTP status and
a short excerpt of the provider's own words, and never carry the API key.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import httpx

from app.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeout,
)

EXCERPT_CHARS = 200

# Anthropic names the error in the body (and in mid-stream `error` events) rather than by status.
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "server_error": 500,
    "overloaded_error": 529,
}


def provider_error(
    model: str,
    failure: httpx.HTTPError | httpx.Response | aiohttp.ClientError | asyncio.TimeoutError,
    *,
    secrets: Iterable[str] = (),
) -> ProviderError:
    """The ProviderError for a failed exchange: an httpx or aiohttp exception (model calls go through
    aiohttp, see `app.providers.http_client`), or a non-2xx (already read) httpx response.

    `secrets` (the API key) are scrubbed from the message in case a provider echoes them back.
    """
    secrets = tuple(secrets)
    if isinstance(failure, httpx.HTTPStatusError):  # from raise_for_status(): the response says it all
        failure = failure.response
    if isinstance(failure, httpx.Response):
        return _error_for_status(model, failure.status_code, failure.text, failure.headers, secrets)
    detail = _scrub(str(failure), secrets)
    what = f"{type(failure).__name__}: {detail}" if detail else type(failure).__name__
    if isinstance(failure, (httpx.TimeoutException, asyncio.TimeoutError)):  # aiohttp's timeouts subclass it
        return ProviderTimeout(f"{model}: request timed out ({what})", model=model)
    if isinstance(failure, httpx.DecodingError):
        return ProviderResponseError(f"{model}: unreadable response body ({what})", model=model)
    # Refused or reset connections, one dropped mid-answer (httpx's ReadError and RemoteProtocolError,
    # aiohttp's ClientPayloadError and ServerDisconnectedError), a bad URL, ...
    return ProviderConnectionError(f"{model}: could not reach the provider ({what})", model=model)


def unreadable_body(model: str, status: int, body: str, reason: str) -> ProviderResponseError:
    """A 2xx whose body is not the JSON (or event stream) the adapter expects."""
    return ProviderResponseError(
        f"{model}: unreadable {status} response ({reason}): {_excerpt(body)!r}",
        model=model,
        http_status=status,
    )


def stream_error_event(model: str, payload: Mapping[str, Any], *, secrets: Iterable[str] = ()) -> ProviderError:
    """An error reported inside a 200 event stream (Anthropic `error` event, OpenAI `{"error": ...}`)."""
    error = payload.get("error")
    error_type = error.get("type") if isinstance(error, Mapping) else None
    status = _ERROR_TYPE_STATUS.get(str(error_type), 500)
    return _error_for_status(model, status, json.dumps(payload), {}, secrets, in_stream=True)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI, precise) or `Retry-After` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_for_status(
    model: str,
    status: int,
    body: str,
    headers: Mapping[str, str],
    secrets: Iterable[str],
    *,
    in_stream: bool = False,
) -> ProviderError:
    where = "in the stream" if in_stream else "from the provider"
    message = f"{model}: HTTP {status} {where}: {_provider_message(_scrub(body, secrets))}"
    retry_after = parse_retry_after(headers)
    if status == 429:
        cls: type[ProviderError] = ProviderRateLimited
    elif status >= 500:  # includes Anthropic's 529 "overloaded"
        cls = ProviderServerError
    elif status >= 400:
        cls = ProviderRejected
    else:
        cls = ProviderResponseError
    return cls(message, model=model, http_status=status, retry_after=retry_after)


def _provider_message(body: str) -> str:
    """The provider's own explanation: `error.message` in both OpenAI and Anthropic bodies, else raw text."""
    try:
        payload = json.loads(body)
    except ValueError:
        return _excerpt(body) or "(empty body)"
    if isinstance(payload, Mapping):
        error = payload.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return _excerpt(str(error["message"]))
        if isinstance(error, str):
            return _excerpt(error)
        for key in ("message", "detail"):
            if payload.get(key):
                return _excerpt(str(payload[key]))
    return _excerpt(body)


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def error_for_status(
    model: str, status: int, body: str, *, headers: Mapping[str, str] | None = None, secrets: Iterable[str] = ()
) -> ProviderError:
    """The ProviderError for a non-2xx answer whose body has been read: a model call's (with its headers,
    for `Retry-After`) or a provider batch's line."""
    return _error_for_status(model, status, body, headers or {}, tuple(secrets))


def error_for_body(model: str, payload: Mapping[str, Any], *, secrets: Iterable[str] = ()) -> ProviderError:
    """The ProviderError for an Anthropic-style error body (`{"type": "error", "error": {"type": ...}}`)
    read from elsewhere than a response: a provider batch's `errored` result."""
    error = payload.get("error")
    error_type = error.get("type") if isinstance(error, Mapping) else None
    status = _ERROR_TYPE_STATUS.get(str(error_type), 500)
    return _error_for_status(model, status, json.dumps(payload), {}, tuple(secrets))
