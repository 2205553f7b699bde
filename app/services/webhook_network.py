"""The webhook sender's connections: each resolves its host once and connects to the address it checked.

Checking a URL's addresses and then handing the URL to an HTTP client resolves the name twice, and a
DNS answer that changes in between (DNS rebinding: a TTL of 0, public first, private next) passes the
check and connects to a private address. Here the check is made where the connection is opened: an
httpcore network backend resolves the host, refuses it unless every address is public (the rules of
app/services/webhooks.py), and opens the TCP connection to a checked address itself, as the SSRF
guards of safehttpx (Gradio with Trail of Bits) and Go's smokescreen check at dial time. The URL keeps
its hostname, so the Host header, TLS SNI and certificate verification are for the name (httpcore
passes the origin's host as `server_hostname`), and kept-alive connections are pooled per name.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from app.services.webhooks import refuse_private

Resolve = Callable[..., list[tuple[Any, ...]]]  # socket.getaddrinfo's signature


class CheckedBackend(httpcore.SyncBackend):
    def __init__(self, *, allow_private: bool, resolve: Resolve | None = None) -> None:
        self.allow_private = allow_private
        self._resolve = resolve

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if self.allow_private:
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        name = host.decode() if isinstance(host, bytes) else host
        resolve = self._resolve or socket.getaddrinfo
        try:
            infos = resolve(name, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"the host {name!r} cannot be resolved: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        refuse_private(name, addresses)  # BadRequest: the sender records it as the attempt's error
        error: Exception | None = None
        for address in addresses:  # each checked: connect to one, never to a name resolved again
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address to connect to for {name!r}")


class CheckedTransport(httpx.HTTPTransport):
    """httpx's transport with the connection pool on a `CheckedBackend` (httpx takes no backend itself)."""

    def __init__(self, *, allow_private: bool, limits: httpx.Limits, resolve: Resolve | None = None) -> None:
        super().__init__(limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=CheckedBackend(allow_private=allow_private, resolve=resolve),
        )


def webhook_client(timeout_seconds: float, *, allow_private: bool, resolve: Resolve | None = None) -> httpx.Client:
    """The sender's client: it blocks on a receiver for at most the timeout, and follows no redirect."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        follow_redirects=False,
        transport=CheckedTransport(allow_private=allow_private, limits=limits, resolve=resolve),
    )
