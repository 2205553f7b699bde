"""The provider HTTP client: httpx's API and aiohttp's, over one aiohttp connection pool.

Model calls (`wire.post_json`, `wire.stream_events`) go straight to aiohttp; everything else (provider
batch uploads, file downloads) uses the httpx API, through httpx-aiohttp's transport on the same
session. Why both: httpcore's pool rescans every queued request whenever one starts or ends, so at a
thousand concurrent calls its bookkeeping bounds throughput (1,000 concurrent 1 s calls on the fake
provider: 22-29 s through httpcore, 1.4 s through aiohttp), which is why the pool is aiohttp's; and the
httpx layer over it builds a Request, a Response and a byte stream per call on top of aiohttp's own.
Measured on the fake provider, 3,000 calls in flight at once, one process: 25 KiB and 0.87 ms of CPU
per call through httpx-over-aiohttp, 15 KiB and 0.57 ms through aiohttp alone.

The model calls' session does not read the environment per request (aiohttp's `trust_env`): that
looks up HTTP(S)_PROXY/NO_PROXY on a thread and reads `~/.netrc` on another for every request, two
thread hops and a file read per call (ten of the worker's fifty context switches per call). The
environment's proxy for each origin is read once instead (`proxy_for`); `~/.netrc` credentials are not
sent to model providers, which authenticate with their API key. The httpx side keeps aiohttp's
environment handling on a session of its own: its requests (batch files) are few.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from httpx_aiohttp import AiohttpTransport, HttpxAiohttpClient
from yarl import URL

Proxy = tuple[URL | None, aiohttp.BasicAuth | None]


class ProviderHTTPClient(HttpxAiohttpClient):
    """An `httpx.AsyncClient` over aiohttp, and the aiohttp session model calls use (`session()`).

    `wire_timeout` is the client's httpx timeout in aiohttp's terms: `read` between chunks (a stream that
    keeps sending lives on), `connect` for the TCP connect, `pool` for waiting on a free connection."""

    def __init__(self, *, limits: httpx.Limits, timeout: httpx.Timeout, **kwargs: Any) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        self.wire_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
        )
        self._proxies: dict[tuple[str, str | None, int | None], Proxy] = {}
        transport = AiohttpTransport(limits=limits, trust_env=True)  # a session of its own, made on first use
        super().__init__(limits=limits, timeout=timeout, transport=transport, **kwargs)

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, made on first use (inside the event loop that will own it)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,  # 0: no limit, as httpx's None
                keepalive_timeout=self._limits.keepalive_expiry,
                ssl=httpx.create_ssl_context(),  # certifi's roots, as httpx verifies
            )
            # No `trust_env`: the environment's proxies come from `proxy_for`, read once per origin.
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    def proxy_for(self, url: URL) -> Proxy:
        """The proxy (and its credentials) HTTP(S)_PROXY and NO_PROXY give `url`, as aiohttp's
        `trust_env` reads them, but once per origin: (None, None) for a direct connection."""
        origin = (url.scheme, url.host, url.port)
        found = self._proxies.get(origin)
        if found is None:
            try:
                found = get_env_proxy_for_url(url)
            except LookupError:
                found = (None, None)
            self._proxies[origin] = found
        return found

    async def aclose(self) -> None:
        await super().aclose()  # the httpx side's session
        await self._close_session()

    async def __aexit__(self, *exc_info: Any) -> None:
        await super().__aexit__(*exc_info)  # httpx's exit closes its transport, not `aclose`
        await self._close_session()

    async def _close_session(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
