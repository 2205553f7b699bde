"""`conveyor serve`: API, worker and a private broker on one machine with nothing configured.

Redis: the configured REDIS_URL when one is set, else a private `redis-server` on a free port when
the binary is on PATH, else fakeredis's TCP server in-process. Database: DATABASE_URL, else a SQLite
file in the data directory. The worker runs as a child process; Ctrl-C stops everything.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group. Were the helpers in it, the
private redis-server would die at once under a worker still shutting down, which then printed hundreds
of lines of connection tracebacks. So helpers start in sessions of their own (the terminal's SIGINT
reaches only `conveyor serve`), and `stop()` ends them one by one, last started first: the worker
while its broker is still up, the broker last.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing started listening on port {port} within {timeout:g} s")


@dataclass
class EmbeddedServices:
    """Child processes and in-process servers started for embedded mode; `stop()` ends them all."""

    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    _fake_redis: object | None = None

    def start_redis(self, data_dir: Path, kind: str = "auto") -> str:
        port = free_port()
        binary = shutil.which("redis-server") if kind != "fakeredis" else None
        if kind == "redis-server" and not binary:
            raise RuntimeError("CONVEYOR_EMBEDDED_REDIS=redis-server, but no redis-server is on PATH")
        if binary:
            self.processes.append(
                subprocess.Popen(
                    [
                        binary,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(data_dir),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            self.notes.append(f"private redis-server on port {port}")
        else:
            from fakeredis import TcpFakeServer

            server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._fake_redis = server
            self.notes.append(f"in-process fake Redis on port {port} (install redis-server for a real one)")
        wait_for_port(port)
        return f"redis://127.0.0.1:{port}/0"

    def start_fake_provider(self) -> str:
        port = free_port()
        self.processes.append(
            subprocess.Popen([sys.executable, "-m", "app.providers.fake", "--port", str(port)], start_new_session=True)
        )
        wait_for_port(port)
        return f"http://127.0.0.1:{port}"

    def start_worker(self, env: dict[str, str], concurrency: int) -> None:
        self.processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "worker",
                    "--concurrency",
                    str(concurrency),
                    "--no-migrate",
                ],
                env={**os.environ, **env},
                start_new_session=True,
            )
        )

    def stop(self) -> None:
        """End the helpers one at a time, last started first, so none outlives what it depends on."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._fake_redis is not None:
            self._fake_redis.shutdown()  # type: ignore[attr-defined]


def embedded_environment(settings: Settings, services: EmbeddedServices, *, demo: bool) -> dict[str, str]:
    """The environment API and worker share: configured services where set, private ones otherwise."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env: dict[str, str] = {}
    if "redis_url" not in settings.model_fields_set:
        env["REDIS_URL"] = services.start_redis(settings.data_dir, settings.embedded_redis)
    if "database_url" not in settings.model_fields_set:
        env["DATABASE_URL"] = f"sqlite:///{(settings.data_dir / 'conveyor.sqlite3').resolve()}"
    if demo:
        env["CONVEYOR_FAKE_PROVIDER_URL"] = services.start_fake_provider()
        env["CONVEYOR_DEFAULT_MODEL"] = "fake/demo"
        services.notes.append("DEMO MODE: the default model is the fake provider; answers are SIMULATED")
    return env


def load_or_create_key(data_dir: Path) -> str:
    """The embedded API key survives restarts so scripts written against it keep working."""
    from app.store.projects import generate_key

    path = data_dir / "api_key"
    if path.exists():
        return path.read_text().strip()
    key = generate_key()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key
