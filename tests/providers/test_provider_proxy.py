"""Model calls honour HTTP(S)_PROXY and NO_PROXY, read once per origin rather than per request
(app/providers/http_client.py), with the fake provider behind a real forwarding proxy."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app.providers.base import CompletionRequest, Message, TextDelta
from tests.fakeprovider import FakeProviderServer
from tests.providers.test_adapters import complete, stream

QUESTION = (Message("system", "Answer."), Message("user", "Through the proxy?"))


class ForwardingProxy:
    """An HTTP forward proxy: takes absolute-form requests, sends them on, and keeps their targets."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                proxy.targets.append(self.path)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")}
                answer = httpx.post(self.path, content=body, headers=headers, timeout=10, trust_env=False)
                self.send_response(answer.status_code)
                for name in ("Content-Type",):
                    self.send_header(name, answer.headers.get(name, "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake():
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def proxy(monkeypatch):
    running = ForwardingProxy()
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", running.url)
    yield running
    running.close()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_calls_and_streams_go_through_the_environments_proxy(fake, proxy, kind):
    answer = complete(kind, fake.url, CompletionRequest("fake/proxied", QUESTION))
    assert answer.text
    events, error = stream(kind, fake.url, CompletionRequest("fake/proxied", QUESTION))
    assert error is None and any(isinstance(event, TextDelta) for event in events)
    assert len(proxy.targets) == 2 and all(target.startswith(fake.url + "/") for target in proxy.targets)


def test_a_host_in_no_proxy_is_called_directly(fake, proxy, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    answer = complete("openai", fake.url, CompletionRequest("fake/direct", QUESTION))
    assert answer.text and proxy.targets == []
