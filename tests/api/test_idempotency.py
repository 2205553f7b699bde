"""`Idempotency-Key` on `/v2/jobs` and `/v2/call`: one job per key and body, 422 for another body, 409
while the first request is still being accepted, keys per project."""

from __future__ import annotations

import asyncio
import threading
import uuid

from sqlalchemy import func, select

from app.schemas.jobs import JobRequest
from app.services.idempotency import request_digest
from app.store.idempotency import STALE_RESERVATION, IdempotencyRepository, KeyBinding
from app.store.projects import ProjectRepository
from app.store.tables import Job


def body(model: str | None = None) -> dict:
    return {"name": "idem", "input": "x", "model": model or f"fake/a?run={uuid.uuid4().hex[:8]}"}


def test_the_same_key_twice_is_one_job(stack, client, fake_provider):
    payload, key = body(), {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = client.post("/jobs", json=payload, headers=key)
    again = client.post("/jobs", json=payload, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers

    done = client.get(f"/jobs/{first.json()['id']}", params={"wait": 10}).json()
    replay = client.post("/jobs", json=payload, headers=key)  # once done, with its result
    assert replay.json()["status"] == "succeeded" and replay.json()["result"] == done["result"]
    assert fake_provider.requests_for(payload["model"]) == 1
    with stack.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.span_id == done["span_id"])) == 1


def test_the_same_key_with_another_body_is_422(client):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    assert client.post("/jobs", json=body(), headers=key).status_code == 202
    other = client.post("/jobs", json=body(), headers=key)
    assert other.status_code == 422
    assert other.json()["type"] == "RequestValidationError"
    assert other.json()["detail"].startswith("Idempotency-Key:")
    elsewhere = client.post("/call", json=body(), headers=key)  # another endpoint is another request
    assert elsewhere.status_code == 422


def test_call_replays_its_result(client, fake_provider):
    payload, key = body(), {"Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/call", json=payload, headers=key)
    again = client.post("/call", json=payload, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert fake_provider.requests_for(payload["model"]) == 1

    failing, key = body("fake/a?fail=400"), {"Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/call", json=failing, headers=key)
    again = client.post("/call", json=failing, headers=key)
    assert first.status_code == again.status_code == 502 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


def test_a_key_still_being_accepted_is_409(stack, client, key):
    payload, idem = body(), str(uuid.uuid4())
    project_id = ProjectRepository(stack.db).project_for_key(key).id
    digest = request_digest("POST /v2/jobs", JobRequest.model_validate(payload))
    assert IdempotencyRepository(stack.db).reserve(project_id, idem, digest, stale_after=STALE_RESERVATION) is None
    busy = client.post("/jobs", json=payload, headers={"Idempotency-Key": idem})
    assert busy.status_code == 409 and busy.json()["type"] == "ConflictError"


def test_concurrent_requests_with_one_key_make_one_job(client):
    payload, key = body(), {"Idempotency-Key": str(uuid.uuid4())}
    answers = []

    def post() -> None:
        answers.append(client.post("/jobs", json=payload, headers=key))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = [a.json()["id"] for a in answers if a.status_code == 202]
    assert accepted and len(set(accepted)) == 1
    assert all(a.status_code in (202, 409) for a in answers)


def test_keys_belong_to_a_project_and_are_checked(stack, client):
    payload, key = body(), {"Idempotency-Key": "shared-key-" + uuid.uuid4().hex}
    mine = client.post("/jobs", json=payload, headers=key).json()
    with stack.client(stack.new_key()) as other:
        theirs = other.post("/jobs", json=payload, headers=key)
        assert theirs.status_code == 202 and theirs.json()["id"] != mine["id"]
        assert "idempotent-replayed" not in theirs.headers
    bad = client.post("/jobs", json=payload, headers={"Idempotency-Key": "x" * 300})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("Idempotency-Key:")


def test_a_refused_request_does_not_use_up_its_key(client):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    refused = client.post("/jobs", json={**body(), "model": "nowhere/x"}, headers=key)
    assert refused.status_code == 400
    fixed = client.post("/jobs", json=body(), headers=key)  # the same key, now with a valid request
    assert fixed.status_code == 202 and "idempotent-replayed" not in fixed.headers


def stack_call_submitter(stack):
    """The call submitter of the stack's API (it runs in this process, see tests/stack.py)."""
    return stack.api.server.config.app.state.conveyor.services.submitter


def test_a_replay_enqueues_a_job_its_first_request_never_enqueued(stack, client, fake_provider):
    """As if the API died after writing the job (and its key) but before enqueueing it: the retry with
    the same key sends it, so it runs now rather than at the stranded-job resend minutes later."""
    payload, key = body(), f"unsent-{uuid.uuid4()}"
    project = ProjectRepository(stack.db).project_for_key(client.headers["Authorization"].split()[-1])
    submitter = stack_call_submitter(stack)
    digest = request_digest("POST /v2/jobs", JobRequest.model_validate(payload))
    assert IdempotencyRepository(stack.db).reserve(project.id, key, digest, stale_after=STALE_RESERVATION) is None
    binding = KeyBinding(project.id, key)
    job = asyncio.run(submitter.submit(project, JobRequest.model_validate(payload).call_request(), binding=binding))
    assert binding.bound  # in the job's own transaction: no crash can split the two
    earlier = IdempotencyRepository(stack.db).reserve(project.id, key, digest, stale_after=STALE_RESERVATION)
    assert earlier is not None and earlier.job_id == job.id

    replay = client.post("/jobs", json=payload, headers={"Idempotency-Key": key})
    assert replay.status_code == 202 and replay.json()["id"] == job.id
    assert replay.headers["idempotent-replayed"] == "true"
    done = client.get(f"/jobs/{job.id}", params={"wait": 20}).json()
    assert done["status"] == "succeeded"
    assert fake_provider.requests_for(payload["model"]) == 1
