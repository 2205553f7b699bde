"""Schemathesis over the whole OpenAPI document: no 500s, no status code the document does not list.

Every operation gets `CONVEYOR_SCHEMATHESIS_EXAMPLES` generated requests that fit its schema and as
many that do not, from seed `CONVEYOR_SCHEMATHESIS_SEED` (the Makefile's SCHEMATHESIS_EXAMPLES and
SCHEMATHESIS_SEED), sent to a real API and worker over Postgres with a key of a project of its own.
(Schemathesis' own pytest plugin does not run under pytest 9 yet, hence its Python API with Hypothesis.)
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from app.config import Settings
from app.main import create_app
from tests.stack import start_stack

EXAMPLES = int(os.environ.get("CONVEYOR_SCHEMATHESIS_EXAMPLES", "10"))
SEED = int(os.environ.get("CONVEYOR_SCHEMATHESIS_SEED", "15"))
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CHECKS = [not_a_server_error, status_code_conformance]
# Requests that do not fit the schema need something to break: a body, a query or header parameter
# (a path parameter that is any string cannot be made invalid).
CASES = [(op, GenerationMode.POSITIVE) for op in OPERATIONS] + [
    (op, GenerationMode.NEGATIVE) for op in OPERATIONS if len(op.body) or len(op.query) or len(op.headers)
]


@pytest.fixture(scope="module")
def stack(fake_provider):
    """Waiting calls answer 202 (documented) after 5 s: generated calls may queue behind one another."""
    running = start_stack(
        fake_provider.url, CONVEYOR_DEFAULT_MODEL="openai/gpt-4o-mini", CONVEYOR_CALL_WAIT_SECONDS="5"
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def auth(stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.new_key()}"}


@pytest.mark.parametrize(("operation", "mode"), CASES, ids=[f"{op.label} {mode.value}" for op, mode in CASES])
def test_no_server_errors_and_only_documented_statuses(stack, auth, operation, mode):
    @seed(SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def probe(case):
        case.call_and_validate(base_url=stack.url, headers=auth, checks=CHECKS, timeout=30)

    probe()
