"""Jobs that end together: written in one transaction, then announced together.

Should the group's transaction fail, each job is written alone, so one bad row holds back no other
job.
Announcements (job done, stream end, webhook dispatch) go out only after the commit; each has a
backstop if lost (waiters re-check, the periodic duties dispatch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.services.announcements import encode_ending
from app.services.stream_messages import StreamMessage
from app.store import keys
from app.store.job_records import Claim, Finish
from workers.claims import RunBlocking
from workers.runtime import WorkerRuntime

log = logging.getLogger("conveyor.worker")


@dataclass(frozen=True)
class Ending:
    """A finished job's write, with the claim it was run under."""

    claim: Claim
    finish: Finish


class EndingWriter:
    def __init__(self, runtime: WorkerRuntime, run_blocking: RunBlocking) -> None:
        self.runtime = runtime
        self.run_blocking = run_blocking
        self.counts = getattr(runtime, "counts", None)  # metrics; the tests' in-process runtimes have none

    async def write(self, endings: list[Ending]) -> list[bool | Exception]:
        """Each ending's outcome: True written, False its lease was gone, or the error it alone hit.

        On a database thread: measured side by side, sending the same statements with psycopg from the
        event loop took the worker more CPU per call, not less (the loop then does the I/O's work
        that a thread does beside it)."""
        return await self.run_blocking(self.write_blocking, endings)

    def write_blocking(self, endings: list[Ending]) -> list[bool | Exception]:
        """`write` on the calling thread."""
        outcomes: list[bool | Exception]
        try:
            outcomes = list(self.runtime.jobs.finish_many([ending.finish for ending in endings]))
        except Exception:
            if len(endings) == 1:
                raise
            log.warning("writing jobs' endings together failed; writing each alone", exc_info=True)
            outcomes = [self._write_alone(ending.finish) for ending in endings]
        written = _written(endings, outcomes)
        if written:
            self._publish(written)
            self._dispatch_webhooks(written)
        return outcomes

    def _write_alone(self, finish: Finish) -> bool | Exception:
        try:
            return self.runtime.jobs.finish_many([finish])[0]
        except Exception as error:
            return error

    def _publish(self, endings: list[Ending]) -> None:
        counted = None
        try:
            pipe = self.runtime.redis.pipeline(transaction=False)
            if self.counts is not None:  # metrics: counted now, sent with this pipeline once a second
                self.counts.count_endings([(e.claim.job, e.finish) for e in endings])
                counted = self.counts.ride(pipe)
            for channel, message in _announcements(endings):
                pipe.publish(channel, message)
            pipe.execute()
        except Exception:  # waiters and streams re-check the stored state
            if counted is not None:
                self.counts.put_back(counted)
            log.warning("could not announce finished jobs", extra={"jobs": len(endings)}, exc_info=True)

    def _dispatch_webhooks(self, endings: list[Ending]) -> None:
        for ending in endings:
            for row in ending.finish.extra_rows:  # the webhook delivery, if the job has one
                try:
                    self.runtime.dispatcher.dispatch(row.id)
                except Exception:  # the periodic duties dispatch it once DISPATCH_GRACE has passed
                    log.warning(
                        "could not dispatch a webhook delivery", extra={"job_id": ending.claim.job.id}, exc_info=True
                    )


def _written(endings: list[Ending], outcomes: list[bool | Exception]) -> list[Ending]:
    return [ending for ending, outcome in zip(endings, outcomes, strict=True) if outcome is True]


def _announcements(endings: list[Ending]) -> list[tuple[str, str]]:
    """Persisted first, announced second: a done message carries what the database now says."""
    messages = []
    for ending in endings:
        job, finish = ending.claim.job, ending.finish
        messages.append((keys.job_done_channel(job.id), encode_ending(finish.status, finish.result, finish.error)))
        if job.stream:
            messages.append((keys.job_stream_channel(job.id), StreamMessage("end").encode()))
    return messages
