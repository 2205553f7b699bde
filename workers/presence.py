"""A worker's presence key, kept alive while the process is: `conveyor_workers` (app/metrics/) counts
these keys, so a worker that was killed must drop out within moments, not after a day.

Set once the worker consumes from its queues (tests wait for it), refreshed every `every` seconds
with a TTL of `ttl`, deleted on a clean shutdown.
"""

from __future__ import annotations

import logging
import threading

import redis

log = logging.getLogger("conveyor.worker")


class Presence:
    def __init__(self, client: redis.Redis, key: str, *, ttl: float = 30.0, every: float = 10.0) -> None:
        self.client = client
        self.key = key
        self.ttl = ttl
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def announce(self) -> None:
        """Present from now on (the worker consumes); refreshed on a thread until `withdraw`."""
        self._set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._refresh, name="conveyor-presence", daemon=True)
            self._thread.start()

    def withdraw(self) -> None:
        self._stop.set()
        self.client.delete(self.key)

    def _set(self) -> None:
        self.client.set(self.key, "ready", px=int(self.ttl * 1000))

    def _refresh(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self._set()
            except Exception:  # Redis away: set again next time (the key may lapse meanwhile)
                log.warning("could not refresh the worker's presence", exc_info=True)
