"""The two examples of the issue, through the official `opperai` SDK, unchanged but for URL and key."""

from __future__ import annotations

import re
import uuid
from typing import List, Optional  # noqa: UP035 - the issue's examples, as users write them

import pytest
from opperai import Opper, errors
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.store.tables import Span


class CountryInput(BaseModel):
    country: str = Field(description="The name of the country")


class CapitalOutput(BaseModel):
    capital: str = Field(description="The capital city of the country")
    population: Optional[int] = Field(None, description="The population of the capital city")  # noqa: UP045


class KBQueryInput(BaseModel):
    facts: List[str] = Field(description="Standalone facts to answer from")  # noqa: UP006
    question: str = Field(description="The question to answer")


class KBQueryOutput(BaseModel):
    thoughts: str = Field(description="Elaborate step-by-step reasoning")
    answer: str = Field(
        description="Concise answer to the question starting with 'The answer to the question is '",
        pattern=r"^The answer to the question is [A-Za-z0-9\s]+$",
    )


FACTS = [
    "Jupiter is the largest planet in the Solar System.",
    "The Great Red Spot is a giant storm on Jupiter.",
    "Saturn possesses the most extensive ring system in the Solar System.",
]


@pytest.fixture
def opper(stack, key) -> Opper:
    return Opper(http_bearer=key, server_url=stack.v2)


def call_spans(stack, span_id: str) -> tuple[Span, list[Span]]:
    with stack.db.transaction() as session:
        root = session.get(Span, span_id)
        children = list(session.scalars(select(Span).where(Span.parent_id == span_id)))
    return root, children


def test_get_capital_example(stack, opper):
    response = opper.call(
        name="get_capital",
        instructions="What is the capital of the provided country? Also include the population if you know it.",
        input_schema=CountryInput,
        output_schema=CapitalOutput,
        input=CountryInput(country="Sweden"),
    )
    uuid.UUID(response.span_id)
    answer = CapitalOutput.model_validate(response.json_payload)
    assert answer.capital
    assert response.message is None
    assert response.cached is False
    usage = response.usage
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # openai/gpt-4o-mini at list price: 0.15 / 0.60 USD per million tokens
    expected = usage["input_tokens"] * 0.15e-6 + usage["output_tokens"] * 0.60e-6
    assert response.cost["generation"] == pytest.approx(expected)
    assert response.cost["total"] == pytest.approx(response.cost["generation"] + response.cost["platform"])

    root, children = call_spans(stack, response.span_id)
    assert root.name == "get_capital" and root.type == "call"
    assert root.input == {"country": "Sweden"}
    assert root.output == response.json_payload
    assert root.model == "openai/gpt-4o-mini"
    assert root.total_tokens == usage["total_tokens"]
    assert [c.type for c in children] == ["generation"]


def test_mini_kb_query_example(stack, opper, fake_provider):
    def ask():
        return opper.call(
            name="mini_kb_query",
            instructions="Given the list of bullet-point facts, answer the question.",
            input_schema=KBQueryInput,
            output_schema=KBQueryOutput,
            input={"facts": FACTS, "question": "Which planet hosts the Great Red Spot?"},
            examples=[
                {
                    "input": {"facts": ["Mars is red."], "question": "Which planet is red?"},
                    "output": {
                        "thoughts": "The fact says Mars is red.",
                        "answer": "The answer to the question is Mars",
                    },
                    "comment": "Answer only from the facts",
                }
            ],
            model=[
                {"name": "openai/gpt-4o-mini", "options": {"temperature": 0.1}},
                "anthropic/claude-3-5-haiku-latest",
            ],
            tags={"user": "company_123", "env": "production"},
            configuration={"invocation.cache.ttl": 60, "invocation.structured_generation.max_attempts": 3},
        )

    first = ask()
    answer = KBQueryOutput.model_validate(first.json_payload)
    assert re.fullmatch(r"The answer to the question is [A-Za-z0-9\s]+", answer.answer)
    assert first.cached is False
    assert first.cost["generation"] > 0

    second = ask()
    assert second.cached is True
    assert second.json_payload == first.json_payload
    assert second.cost["generation"] == 0 and second.usage["total_tokens"] == 0
    assert second.span_id != first.span_id

    root, _ = call_spans(stack, first.span_id)
    assert root.tags == {"user": "company_123", "env": "production"}
    assert root.model == "openai/gpt-4o-mini"
    cached_root, cached_children = call_spans(stack, second.span_id)
    assert cached_root.cached is True and cached_children == []


def test_sdk_typed_errors(stack, key):
    with pytest.raises(errors.UnauthorizedError):
        Opper(http_bearer="not-a-key", server_url=stack.v2).call(name="t", input="x")
    opper = Opper(http_bearer=key, server_url=stack.v2)
    with pytest.raises(errors.BadRequestError) as bad_input:
        opper.call(name="get_capital", input_schema=CountryInput, input={"country": 42})
    assert "input" in str(bad_input.value.data.detail)
