"""A private PostgreSQL cluster for one fault test: initdb into a temporary directory, started and
restarted with pg_ctl on a free port. initdb refuses to run as root, so as root the cluster belongs to
the `postgres` system user and its commands run through `runuser`."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from app.embedded import free_port

BIN = Path(os.environ.get("CONVEYOR_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> bool:
    return (BIN / "initdb").exists() and (os.geteuid() != 0 or _system_user() is not None)


def _system_user() -> str | None:
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        return None


class PrivatePostgres:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, user="postgres")

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        # fsync off: the test restarts the server cleanly; it never crashes the machine.
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        log = str(self.dir / "server.log")
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "30", "start")
        deadline = time.monotonic() + 15
        while True:
            try:
                psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres").close()
                return
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "the private Postgres did not accept connections"
                time.sleep(0.05)

    def stop(self) -> None:
        # fast: open transactions are rolled back and sessions cut, as a restart by an operator does.
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)  # an outage of this length, not a wait for a state
        self.start()

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
