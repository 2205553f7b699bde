"""Run the fake model provider as a real HTTP server for a test: in a thread, or as a process."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.providers.fake import create_fake_provider_app, fake_server_config

REPO_ROOT = Path(__file__).resolve().parents[1]


def _wait_healthy(url: str, timeout: float, alive: Any = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the fake provider at {url} exited before answering /healthz")
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"the fake provider at {url} did not answer /healthz within {timeout} s")


class FakeProviderServer:
    """`with FakeProviderServer() as fake:` serves the fake on a free 127.0.0.1 port at `fake.url`.

    The socket is bound before the server starts, so there is no race for the port.
    """

    def __init__(self, rate_limit_per_second: float | None = None, batch_seconds: float = 0.5) -> None:
        self._app = create_fake_provider_app(rate_limit_per_second, batch_seconds)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(fake_server_config(self._app))
        self._thread = threading.Thread(target=self._serve, name="fake-provider", daemon=True)

    def _serve(self) -> None:
        self._server.run(sockets=[self._socket])

    def __enter__(self) -> FakeProviderServer:
        self._thread.start()
        _wait_healthy(self.url, timeout=10, alive=self._thread.is_alive)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/stats").json()

    def reset(self) -> None:
        httpx.post(f"{self.url}/stats/reset").raise_for_status()

    def batches(self) -> dict[str, Any]:
        """The batch API's figures: batches created (by status), lines answered, requests held now."""
        return self.stats()["batches"]

    def hold(self, name: str) -> None:
        """Hold the batch API's `upload`, `create`, `content` or `error_content` requests until `release`."""
        httpx.post(f"{self.url}/batch-control/hold", json={"name": name}).raise_for_status()

    def release(self, name: str) -> None:
        httpx.post(f"{self.url}/batch-control/release", json={"name": name}).raise_for_status()

    def requests_for(self, model: str) -> int:
        """Requests received for a model, named with or without its `provider/` prefix."""
        model_id = model.split("/", 1)[1] if "/" in model else model
        return self.stats()["requests_by_model"].get(model_id, 0)

    def received(self, request_id: str) -> dict[str, Any]:
        """What the server received for the answer with this id (`Completion.provider_request_id`)."""
        for record in self.stats()["recent"]:
            if record["id"] == request_id:
                return record
        raise KeyError(f"the fake provider has no recent request {request_id!r}")


def start_fake_provider_process(port: int, rate_limit_per_second: float | None = None) -> subprocess.Popen[bytes]:
    """`python -m app.providers.fake --port N` in a child process, returned once /healthz answers.
    The caller terminates it."""
    command = [sys.executable, "-m", "app.providers.fake", "--port", str(port)]
    if rate_limit_per_second is not None:
        command += ["--rate-limit", str(rate_limit_per_second)]
    process = subprocess.Popen(command, cwd=REPO_ROOT)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", timeout=20, alive=lambda: process.poll() is None)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process
