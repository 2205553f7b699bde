"""Projects and keys: `conveyor keys create --project NAME` prints a working key alone on its last line,
keys are stored only as SHA-256 digests, and keys from CONVEYOR_API_KEYS belong to the `default` project."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import uuid

import httpx
from sqlalchemy import select

from app.store.projects import DEFAULT_PROJECT
from app.store.tables import ApiKey, Project
from tests.stack import ROOT, ApiServer

KEY_LINE = re.compile(r"^cvy_[A-Za-z0-9_-]{40,}$")


def keys_create(stack, project: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "create", "--project", project],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def stored_keys(stack, key: str) -> tuple[list[ApiKey], str | None]:
    """The api_keys rows whose hash or prefix columns could reveal `key`, and its project's name."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    with stack.db.transaction() as session:
        rows = list(session.scalars(select(ApiKey)))
        project = session.scalar(select(Project.name).join(ApiKey).where(ApiKey.key_hash == digest))
    return [r for r in rows if key in (r.key_hash, r.prefix) or r.key_hash == digest], project


def alias_names(client: httpx.Client) -> list[str]:
    response = client.get("/models/aliases")
    assert response.status_code == 200, response.text
    return [a["name"] for a in response.json()["data"]]


def test_keys_create_prints_the_key_alone_on_the_last_line_and_it_works(stack):
    project = f"team-{uuid.uuid4().hex[:6]}"
    first = keys_create(stack, project)
    key = first.stdout.splitlines()[-1]
    assert KEY_LINE.match(key), first.stdout
    assert first.stdout == key + "\n"  # nothing else on stdout: `KEY=$(conveyor keys create ...)` works
    assert project in first.stderr

    rows, owner = stored_keys(stack, key)
    assert owner == project
    assert len(rows) == 1 and rows[0].key_hash == hashlib.sha256(key.encode()).hexdigest()  # hashed, not kept
    assert rows[0].prefix == key[:8]

    second = keys_create(stack, project).stdout.splitlines()[-1]  # same project, another key
    assert second != key
    with stack.client(key) as one, stack.client(second) as two, stack.client(stack.new_key()) as stranger:
        assert one.post("/models/aliases", json={"name": "shared", "fallback_models": ["fake/a"]}).status_code == 200
        assert alias_names(two) == ["shared"]
        assert alias_names(stranger) == []
    with stack.client(key + "x") as wrong:
        response = wrong.get("/models/aliases")
    assert response.status_code == 401 and response.json()["type"] == "UnauthorizedError"


def test_configured_keys_belong_to_the_default_project(stack):
    keys = [f"env-key-{uuid.uuid4().hex}" for _ in range(2)]
    api = ApiServer(stack.settings.model_copy(update={"api_keys": ",".join(keys)}))
    api.start()
    try:
        base = f"http://127.0.0.1:{api.port}/v2"
        with (
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {keys[0]}"}) as first,
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {keys[1]}"}) as second,
        ):
            created = first.post("/models/aliases", json={"name": f"env-{keys[0][-6:]}", "fallback_models": ["fake/a"]})
            assert created.status_code == 200, created.text
            assert created.json()["name"] in alias_names(second)
    finally:
        api.stop()
    for key in keys:
        rows, owner = stored_keys(stack, key)
        assert owner == DEFAULT_PROJECT
        assert len(rows) == 1 and rows[0].key_hash != key
