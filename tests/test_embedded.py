"""`conveyor serve --demo` with nothing configured: one command gives a working service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from opperai import Opper
from pydantic import BaseModel

from app.embedded import free_port, wait_for_port
from tests.helpers import eventually


class Capital(BaseModel):
    capital: str


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: none of Conveyor's settings, not even the tests' own."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "REDIS_", "DATABASE_", "OPENAI_"))}
    return {**keep, **extra}


@pytest.mark.parametrize("broker", ["redis-server", "fakeredis"])
def test_serve_demo_answers_the_sdk_and_stops_cleanly(tmp_path: Path, broker: str):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--demo", "--port", str(port), "--concurrency", "8"],
        cwd=tmp_path,
        env=clean_env(CONVEYOR_EMBEDDED_REDIS=broker, CONVEYOR_LOG_LEVEL="WARNING"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=30)
        key = (tmp_path / ".conveyor" / "api_key").read_text().strip()
        opper = Opper(http_bearer=key, server_url=f"http://127.0.0.1:{port}/v2")

        def answered() -> object:  # the worker may still be starting when the API already answers
            try:
                return opper.call(name="capital", input="Sweden", output_schema=Capital)
            except Exception:
                return None

        response = eventually(answered, 30, what="a call answered", poll=0.2)
        assert Capital.model_validate(response.json_payload).capital
        hello = opper.call(name="hello", input="hi")
        assert hello.message.startswith("[simulated]")
        assert hello.cost == {"generation": 0.0, "platform": 0.0, "total": 0.0}  # simulated answers cost nothing
        helpers = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert len(helpers) >= 2  # worker and fake provider (and redis-server)
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C: the terminal signals its whole foreground group
        _, err = server.communicate(timeout=60)
    assert server.returncode in (0, 130)
    assert "Traceback" not in err and len(err.splitlines()) < 40, err
    for pid in helpers:  # each helper ended (and was reaped by serve) though it ran in a session of its own
        assert subprocess.run(["ps", "-p", pid], capture_output=True).returncode == 1, pid
    assert "DEMO MODE" in err and "SIMULATED" in err and key in err
    assert (tmp_path / ".conveyor" / "conveyor.sqlite3").exists()
    expected_note = "private redis-server" if broker == "redis-server" else "in-process fake Redis"
    assert expected_note in err
