"""A Celery execution pool that runs coroutine tasks on the worker's event loop, with no thread each.

Celery's thread pool gives every reserved message a thread that blocks until its job ends. A job is
almost all waiting on a provider, so that thread is pure cost: its stack, and the GIL hand-offs of
a thousand threads waking and sleeping. This pool runs the tasks registered in `LoopTasks` as
coroutines on the runtime's loop instead; any other task (webhook sends) runs on threads as before.

Celery's contract is kept: a message is acknowledged when its task ends (late ack), so the worker
reserves at most `concurrency` messages and a message still unacknowledged when the process dies
goes back to the queue. A task that raises is logged and acknowledged, as Celery does by default;
its job is recovered through its lease (see workers/runner.py). Except when it raised because the
database or Redis could not be reached: then its message goes back to the queue after a pause. A job
whose claim failed that way holds no lease, and its acknowledged message would have left it queued
until the stranded-job resend (CONVEYOR_STRANDED_AFTER, 5 minutes); a job that was claimed is
recovered through its lease as before, and the extra message meets a lease or a final job (a no-op).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import redis
from billiard.einfo import ExceptionInfo
from celery import Celery
from celery.concurrency.base import BasePool, apply_target
from celery.concurrency.thread import ApplyResult
from celery.exceptions import Reject

from app.observability import tracing
from app.store.db import DATABASE_UNAVAILABLE
from workers import broker
from workers.event_loop import EventLoopThread

log = logging.getLogger("conveyor.worker")

CoroutineBody = Callable[..., Awaitable[Any]]

# A task that raised one of these could not reach the database or Redis: not its job's fault. The
# database's are SQLAlchemy's and psycopg's own (the claims and endings it sends: app/store/raw_sql.py).
UNREACHABLE = (*DATABASE_UNAVAILABLE, redis.ConnectionError, redis.TimeoutError)
# How long such a message waits before it goes back to the queue: a store that is away is not
# hammered by the same messages in a loop, and one that is back soon gets them within seconds.
REQUEUE_AFTER_SECONDS = 2.0


class LoopTasks:
    """Celery tasks whose bodies are coroutines run on one event loop."""

    def __init__(self, loop: EventLoopThread) -> None:
        self.loop = loop
        self._bodies: dict[str, CoroutineBody] = {}

    def register(self, app: Celery, name: str, body: CoroutineBody) -> None:
        self._bodies[name] = body

        # What any other pool (and `task.apply()`) runs: the same coroutine, waited for on a thread.
        @app.task(name=name, acks_late=True, reject_on_worker_lost=True)
        def run_on_loop(*args: Any, **kwargs: Any) -> None:
            self.loop.run(body(*args, **kwargs))

    def body(self, name: str) -> CoroutineBody | None:
        return self._bodies.get(name)


def loop_pool(tasks: LoopTasks) -> type[BasePool]:
    """The pool class for a worker whose coroutine tasks are `tasks` (Celery instantiates it)."""
    return type("LoopPool", (LoopPool,), {"tasks": tasks})


class LoopPool(BasePool):
    tasks: LoopTasks
    body_can_be_buffer = True
    signal_safe = False

    def on_start(self) -> None:
        # Tasks outside `tasks` keep the thread pool's behaviour: a thread each, up to the limit.
        self._threads = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix="conveyor-task")
        # Acknowledging is a blocking Redis round trip: kept off the loop, in order, on one thread.
        self._acks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conveyor-ack")
        # The jobs' tasks, added and discarded on the loop's thread only.
        self._running: set[asyncio.Task] = set()
        # Tasks whose messages are acknowledged in memory (workers/broker.py `BulkQoS`), on Conveyor's
        # transport only: their ack needs no hop to the acking thread. Any other ack may block on Redis.
        ours = self.app.conf.broker_transport == broker.TRANSPORT
        self._acked_in_memory = broker.UNRECORDED_TASKS if ours else frozenset()

    def on_apply(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Callable[..., Any] | None = None,
        accept_callback: Callable[..., Any] | None = None,
        **_: Any,
    ) -> ApplyResult | None:
        name, task_id, request, body, content_type, content_encoding = args
        coroutine_body = self.tasks.body(name)
        if coroutine_body is None:
            return ApplyResult(self._threads.submit(apply_target, target, args, kwargs, callback, accept_callback))
        # Celery's request already holds the decoded arguments: no second decoding of the body.
        task_args, task_kwargs = request["args"], request["kwargs"]
        if accept_callback is not None:
            accept_callback(os.getpid(), time.monotonic())
        # Inside the job's span (started once the job is claimed: its trace is the job's), when tracing is on.
        job = tracing.traced_job(name, request, tuple(task_args), coroutine_body(*task_args, **task_kwargs))
        ended = partial(self._ended, callback, time.monotonic(), name, task_id)
        # Started on the loop as a task, with no concurrent Future to wait on from here: nothing on this
        # thread waits for a job, and a Future (with its Condition and lock) was a kilobyte per job in flight.
        # Celery takes None for "no result handle" (the thread pool's handle only serves `get`).
        self.tasks.loop.loop.call_soon_threadsafe(self._start, job, ended)
        return None

    def _start(self, job: Coroutine[Any, Any, Any], ended: Callable[[asyncio.Task], None]) -> None:
        """On the loop: the job's task, tracked until it ends."""
        task = self.tasks.loop.loop.create_task(job)
        self._running.add(task)
        task.add_done_callback(ended)

    def _ended(
        self, callback: Callable[..., Any] | None, started: float, name: str, task_id: str, future: asyncio.Task
    ) -> None:
        self._running.discard(future)
        if future.cancelled():
            return  # the loop was stopped under it: unacknowledged, the message goes back to the queue
        error = future.exception()
        if isinstance(error, UNREACHABLE) and callback is not None:
            log.warning(
                "task could not reach the database or Redis; its message goes back to the queue",
                extra={"task": name, "task_id": task_id, "error": repr(error)[:300]},
            )
            self.tasks.loop.loop.call_soon_threadsafe(
                self.tasks.loop.loop.call_later, REQUEUE_AFTER_SECONDS, self._requeue, callback, started
            )
            return
        if error is not None:
            log.error("task raised", exc_info=error, extra={"task": name, "task_id": task_id})
        if callback is None:
            return
        outcome = (0, None, time.monotonic() - started)
        if name in self._acked_in_memory:
            callback(outcome)  # a few dictionary operations: no hop to the acking thread
        else:
            self._acks.submit(callback, outcome)

    def _requeue(self, callback: Callable[..., Any], started: float) -> None:
        """Celery's own path for a task that rejects its message with requeue (`Request.on_failure`)."""
        try:
            raise Reject("the database or Redis was unreachable", requeue=True)
        except Reject:
            failure = ExceptionInfo()
        # Shutting down: left unacknowledged, the message is handed back when the channel closes.
        with contextlib.suppress(RuntimeError):
            self._acks.submit(callback, (1, failure, time.monotonic() - started))

    def on_stop(self) -> None:
        """Warm shutdown: let running tasks end and be acknowledged, as the thread pool does."""
        self.tasks.loop.run(self._all_ended())
        self._threads.shutdown(wait=True, cancel_futures=True)
        self._acks.shutdown(wait=True)
        super().on_stop()

    def on_terminate(self) -> None:
        """Cold shutdown: stop at once; what is unacknowledged is redelivered."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._acks.shutdown(wait=False, cancel_futures=True)
        super().on_terminate()

    async def _all_ended(self) -> None:
        """On the loop: until every job's task has ended, those started while waiting included."""
        while self._running:
            await asyncio.wait(set(self._running))

    def _get_info(self) -> dict[str, Any]:
        info = super()._get_info()
        info.update({"max-concurrency": self.limit, "on-loop": len(self._running)})  # len is atomic
        return info
