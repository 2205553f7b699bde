"""Abandons running jobs that the API cancelled, within moments of the cancellation.

One pattern subscription per worker process (on the runtime's event loop) hears every cancellation.
A job is watched from before its claim until it ends: a cancellation committed before the claim
makes the claim fail, and one committed after it is published after it, so it is heard. The watch
cancels the job's engine task, which cancels the provider request in flight. Should Redis lose the
message, the next lease renewal fails (the job is no longer `running`) and the work is abandoned then.
Everything here runs on the loop's thread.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from app.services.pubsub_listener import listen_forever
from app.store import keys
from workers.event_loop import EventLoopThread


class LeaseLost(Exception):
    """Another worker now owns the job; this one must not write anything."""


class JobCancelled(Exception):
    """The API cancelled the job (and recorded it); this worker must not write anything."""


class HardTimeLimit(Exception):
    """The job ran past CONVEYOR_JOB_HARD_TIME_LIMIT: it fails with JobTimeout."""


class Watch:
    """One running job's stop signal: the API's cancellation (here), a lost lease or a lease run out in a
    database outage (workers/lease_keeper.py), the hard time limit (workers/runner.py). Stopping cancels
    the task running the job's engine call; `stopped_by` says why, for that task to raise in place of its
    CancelledError. As a context manager it is registered under its job id while inside (a class, not a
    generator: one object per job)."""

    __slots__ = ("stopped_by", "_task", "_registry", "_job_id")

    def __init__(self, registry: dict[str, Watch] | None = None, job_id: str = "") -> None:
        self.stopped_by: BaseException | None = None
        self._task: asyncio.Future | None = None
        self._registry = registry
        self._job_id = job_id

    def __enter__(self) -> Watch:
        if self._registry is not None:
            self._registry[self._job_id] = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._registry is not None and self._registry.get(self._job_id) is self:
            del self._registry[self._job_id]

    def attach(self, task: asyncio.Future) -> None:
        """Until `detach`, a stop cancels `task` (at once if the stop came first)."""
        self._task = task
        if self.stopped_by is not None:
            task.cancel()

    def detach(self) -> None:
        self._task = None

    def stop(self, reason: BaseException) -> None:
        """The first reason wins (a job cancelled and then found without its lease was cancelled), and
        its task is cancelled once: it has one CancelledError to turn into that reason."""
        if self.stopped_by is not None:
            return
        self.stopped_by = reason
        if self._task is not None:
            self._task.cancel()

    def cancel(self) -> None:
        self.stop(JobCancelled())


class CancelWatcher:
    def __init__(self, async_redis: aioredis.Redis, loop: EventLoopThread) -> None:
        self.async_redis = async_redis
        self.loop = loop
        self._watches: dict[str, Watch] = {}
        self._listener = None

    def start(self) -> None:
        self._listener = self.loop.submit(self._listen())

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()

    @property
    def in_flight(self) -> int:
        """Jobs this process is running now (each is watched from before its claim to its end)."""
        return len(self._watches)

    def watch(self, job_id: str) -> Watch:
        """Use with `with`: while inside, a cancellation of `job_id` stops the watch."""
        return Watch(self._watches, job_id)

    def _cancel(self, job_id: str) -> None:
        watch = self._watches.get(job_id)
        if watch is not None:
            watch.cancel()

    async def _listen(self) -> None:
        await listen_forever(
            self.async_redis,
            lambda pubsub: pubsub.psubscribe(keys.JOB_CANCEL_PATTERN),
            lambda channel, _: self._cancel(keys.job_id_from_cancel_channel(channel)),
            "cancellation listener",
        )
