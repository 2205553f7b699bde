"""What the HTTP model adapters (OpenAI's chat completions, Anthropic's Messages) have in common: a
name, an endpoint, a key, the shared client, and the way a completion is sent and a stream opened.

A subclass says only what is its own: the path, how the key is sent, the body, how an answer is read
and how its event stream is read. What is fixed for the adapter's life (the URL, the key's headers) is
built once here rather than per request: the model-call path is one of the worker's CPU costs, so
this class adds no object or call per request over sending straight through `wire.post_json`.

The client is the adapter's only way onto the network (`client.session().post(...)` through the proxy
`client.proxy_for` names, see `app.providers.wire`), so a unit test hands an adapter a client that answers from a script
(tests/unit/wire_double.py) and checks what the adapter makes of each answer, with no server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from app.providers.base import Completion, CompletionRequest
from app.providers.http_client import ProviderHTTPClient
from app.providers.wire import SSEEvent, post_json, stream_events


class HTTPAdapter:
    """`POST {base_url}{path}` with the key's headers. `api_key` may be empty (local servers need none).

    Subclasses set `path`, and define `key_headers`, `build_body`, `read_answer` and `stream`."""

    path: ClassVar[str]

    def __init__(self, name: str, base_url: str, api_key: str, client: ProviderHTTPClient) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._client = client
        self._url = f"{self.base_url}{self.path}"
        self._secrets = (api_key,)  # scrubbed from every error message
        self.auth_headers: Mapping[str, str] = self.key_headers(api_key)
        self._fixed_headers = {"content-type": "application/json", **self.auth_headers}

    @staticmethod
    def key_headers(api_key: str) -> dict[str, str]:
        """The headers every request to this provider carries (its key, a pinned version...)."""
        raise NotImplementedError

    def build_body(self, request: CompletionRequest, *, stream: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def read_answer(self, payload: Mapping[str, Any], requested_model: str, label: str) -> Completion:
        """The Completion in an answer body; a ProviderResponseError naming `label` when there is none."""
        raise NotImplementedError

    async def complete(self, request: CompletionRequest) -> Completion:
        label = f"{self.name}/{request.model}"
        payload = await post_json(
            self._client,
            self._url,
            self.build_body(request),
            self._headers(request),
            model=label,
            secrets=self._secrets,
        )
        return self.read_answer(payload, request.model, label)

    def _open_stream(self, request: CompletionRequest) -> tuple[str, AsyncIterator[SSEEvent]]:
        """(the label errors name, the answer's server-sent events): what a subclass's `stream` reads."""
        label = f"{self.name}/{request.model}"
        events = stream_events(
            self._client,
            self._url,
            self.build_body(request, stream=True),
            self._headers(request),
            model=label,
            secrets=self._secrets,
        )
        return label, events

    def _headers(self, request: CompletionRequest) -> dict[str, str]:
        # A request's extra headers come last, so they may override any (as they always could).
        return {**self._fixed_headers, **request.extra_headers}
