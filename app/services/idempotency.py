"""`Idempotency-Key`: a retried submission returns the job of the first one instead of running again.

The same key with the same request (same endpoint, same JSON body) is the original job, replayed;
with a different request it is a 422; while the first request is still being accepted, a 409. Keys
are per project and live as long as their job (the key row is deleted with it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from app.engine.structured import canonical_json
from app.errors import BadRequest, Conflict, UnprocessableRequest
from app.store.idempotency import STALE_RESERVATION, IdempotencyRepository, KeyBinding
from app.store.jobs import JobRecord, JobRepository
from app.store.projects import ProjectRef

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}\Z")  # visible ASCII, as header values travel


@dataclass(frozen=True)
class Accepted:
    """The job a submission stands for; `replayed` when it was created by an earlier request."""

    job: JobRecord
    replayed: bool


def request_digest(endpoint: str, body: BaseModel) -> str:
    """What makes two requests "the same": the endpoint and the body's JSON (key order aside)."""
    canonical = canonical_json(body.model_dump(mode="json", exclude_unset=True))
    return hashlib.sha256(f"{endpoint}\n{canonical}".encode()).hexdigest()


@dataclass
class IdempotencyGuard:
    keys: IdempotencyRepository
    jobs: JobRepository
    # A key reserved this long ago by a request that bound no job belongs to a request that died.
    stale_after: timedelta = STALE_RESERVATION

    async def accept(
        self,
        project: ProjectRef,
        key: str | None,
        endpoint: str,
        body: BaseModel,
        submit: Callable[[KeyBinding | None], Awaitable[JobRecord]],
    ) -> Accepted:
        """The job of this submission: `submit(binding)`'s (written, not yet enqueued), or the key's
        earlier one. `submit` writes the job and, given a binding, the key's link to it in the same
        transaction; a key it did not bind (a batch) is bound here after it."""
        if key is None:
            return Accepted(await submit(None), replayed=False)
        if not _VALID_KEY.match(key):
            raise BadRequest("must be 1 to 255 visible ASCII characters", field_name=HEADER)
        digest = request_digest(endpoint, body)
        earlier = await run_in_threadpool(self.keys.reserve, project.id, key, digest, stale_after=self.stale_after)
        if earlier is not None:
            return await self._replay(project, key, digest, earlier.request_digest, earlier.job_id)
        binding = KeyBinding(project.id, key)
        try:
            job = await submit(binding)
        except BaseException:
            await run_in_threadpool(self.keys.release, project.id, key)
            raise
        if not binding.bound:
            await run_in_threadpool(self.keys.bind, project.id, key, job.id)
        return Accepted(job, replayed=False)

    async def _replay(
        self, project: ProjectRef, key: str, digest: str, earlier_digest: str, job_id: str | None
    ) -> Accepted:
        if earlier_digest != digest:
            raise UnprocessableRequest(
                "this Idempotency-Key was already used with a different request",
                detail=f"{HEADER}: {key!r} was used with another endpoint or body; use a new key for a new request",
            )
        if job_id is None:
            raise Conflict(
                "a request with this Idempotency-Key is still being accepted; retry shortly",
                detail=f"{HEADER}: {key!r} is in use by a request in progress",
            )
        job = await run_in_threadpool(self.jobs.get, job_id, project_id=project.id)
        if job is None:  # the job went away between the two reads; the key went with it
            raise Conflict("the job of this Idempotency-Key was just removed; retry", detail=f"{HEADER}: {key!r}")
        return Accepted(job, replayed=True)
