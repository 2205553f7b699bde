"""`opper.language_models` and `opper.embeddings` through the official SDK, unchanged but for URL and key."""

from __future__ import annotations

import math
import uuid

import pytest
from opperai import Opper, errors

from app.engine.cost import PriceTable
from tests.stack import start_stack

SECRET_API_KEY = "sk-never-returned-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def stack(fake_provider):
    running = start_stack(fake_provider.url, CONVEYOR_SECRET_KEY="sdk-" + uuid.uuid4().hex)
    yield running
    running.stop()


@pytest.fixture
def opper(stack, key) -> Opper:
    return Opper(http_bearer=key, server_url=stack.v2)


def test_list_models(opper):
    table = PriceTable.from_path(None).models()
    page = opper.language_models.list()
    assert page.meta.total_count == len(table)
    assert [m.name for m in page.data] == [p.name for p in table][:100]
    sonnet = next(m for m in page.data if m.name == "anthropic/claude-3-5-sonnet-latest")
    assert (sonnet.hosting_provider, sonnet.location) == ("anthropic", "us")
    assert sonnet.input_cost_per_token == pytest.approx(3e-6)
    assert sonnet.output_cost_per_token == pytest.approx(15e-6)
    assert [m.name for m in opper.language_models.list(offset=1, limit=2).data] == [p.name for p in table[1:3]]
    with pytest.raises(errors.BadRequestError) as info:
        opper.language_models.list(limit=1001)
    assert "limit" in str(info.value.data.detail)


def test_custom_models_crud(opper, stack, fake_provider):
    extra = {"api_base": f"{fake_provider.url}/v1", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    created = opper.language_models.register_custom(
        name="acme/llama-3.1", identifier="llama3.1:8b", extra=extra, api_key=SECRET_API_KEY
    )
    assert (created.name, created.identifier, created.extra) == ("acme/llama-3.1", "llama3.1:8b", extra)
    assert SECRET_API_KEY not in created.model_dump_json()
    with pytest.raises(errors.ConflictError) as conflict:
        opper.language_models.register_custom(name="acme/llama-3.1", identifier="other", extra=extra)
    assert conflict.value.status_code == 409 and "acme/llama-3.1" in conflict.value.data.message

    fetched = opper.language_models.get_custom(model_id=created.id)
    by_name = opper.language_models.get_custom_by_name(name="acme/llama-3.1")
    assert fetched.id == by_name.id == created.id and by_name.identifier == "llama3.1:8b"
    listed = opper.language_models.list_custom()
    assert listed.meta.total_count == 1 and [m.id for m in listed.data] == [created.id]

    updated = opper.language_models.update_custom(model_id=created.id, identifier="llama3.1:70b", api_key="sk-new")
    assert (updated.name, updated.identifier, updated.extra) == ("acme/llama-3.1", "llama3.1:70b", extra)
    assert "sk-new" not in updated.model_dump_json()

    with pytest.raises(errors.NotFoundError):
        Opper(http_bearer=stack.new_key(), server_url=stack.v2).language_models.get_custom(model_id=created.id)
    opper.language_models.delete_custom(model_id=created.id)
    with pytest.raises(errors.NotFoundError) as missing:
        opper.language_models.get_custom(model_id=created.id)
    assert missing.value.status_code == 404 and missing.value.data.detail
    assert opper.language_models.list_custom().meta.total_count == 0


def test_aliases_crud(opper, stack):
    alias = opper.language_models.create_alias(
        name="team/default", fallback_models=["openai/gpt-4o-mini", "fake/backup"], description="cheap first"
    )
    assert (alias.name, alias.fallback_models, alias.description) == (
        "team/default",
        ["openai/gpt-4o-mini", "fake/backup"],
        "cheap first",
    )
    with pytest.raises(errors.ConflictError):
        opper.language_models.create_alias(name="team/default", fallback_models=["fake/x"])
    assert opper.language_models.get_alias(alias_id=alias.id).fallback_models == alias.fallback_models
    assert opper.language_models.get_alias_by_name(name="team/default").id == alias.id
    second = opper.language_models.create_alias(name="solo", fallback_models=["fake/solo"])
    listed = opper.language_models.list_aliases()
    assert listed.meta.total_count == 2 and [a.id for a in listed.data] == [alias.id, second.id]

    updated = opper.language_models.update_alias(alias_id=alias.id, fallback_models=["fake/backup"], description=None)
    assert (updated.name, updated.fallback_models, updated.description) == ("team/default", ["fake/backup"], None)
    with pytest.raises(errors.BadRequestError) as cycle:
        opper.language_models.update_alias(alias_id=second.id, fallback_models=["solo"])
    assert "cycle" in cycle.value.data.message

    other = Opper(http_bearer=stack.new_key(), server_url=stack.v2)
    with pytest.raises(errors.NotFoundError):
        other.language_models.get_alias_by_name(name="team/default")
    assert other.language_models.list_aliases().meta.total_count == 0
    opper.language_models.delete_alias(alias_id=alias.id)
    with pytest.raises(errors.NotFoundError):
        opper.language_models.get_alias(alias_id=alias.id)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embeddings(opper):
    texts = [
        "How do I reset my password?",
        "Password reset: use the forgot password link on the login page",
        "Stockholm is the capital of Sweden",
    ]
    response = opper.embeddings.create(input=texts, model="fake/embed-small")
    assert response.model == "fake/embed-small"
    assert [item["index"] for item in response.data] == [0, 1, 2]
    assert {item["object"] for item in response.data} == {"embedding"}
    vectors = [item["embedding"] for item in response.data]
    assert {len(v) for v in vectors} == {256}
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert response.usage["prompt_tokens"] > 0

    default = opper.embeddings.create(input="How do I reset my password?")  # CONVEYOR_EMBEDDING_MODEL
    assert default.model == "openai/text-embedding-3-small" and default.data[0]["embedding"] == vectors[0]
    smaller = opper.embeddings.create(input="hi", model={"name": "fake/e", "options": {"dimensions": 8}})
    assert len(smaller.data[0]["embedding"]) == 8


def test_embeddings_errors_and_alias_fallback(opper):
    with pytest.raises(errors.Error) as empty:
        opper.embeddings.create(input=[], model="fake/e")
    assert empty.value.status_code == 422 and empty.value.data.type and "input" in str(empty.value.data.detail)
    with pytest.raises(errors.Error) as down:
        opper.embeddings.create(input="hi", model=f"fake/e?fail=503&run={uuid.uuid4().hex}")
    assert down.value.status_code == 502 and down.value.data.type == "EmbeddingFailedError"
    assert down.value.data.detail["attempts"][0]["error_type"] == "ProviderServerError"
    with pytest.raises(errors.BadRequestError) as no_endpoint:
        opper.embeddings.create(input="hi", model="anthropic/claude-3-5-haiku-latest")
    assert "no embeddings endpoint" in no_endpoint.value.data.message

    opper.language_models.create_alias(
        name="embedder", fallback_models=[f"fake/down?fail=500&run={uuid.uuid4().hex}", "fake/up"]
    )
    answered = opper.embeddings.create(input="hello world", model="embedder")
    assert answered.model == "fake/up" and len(answered.data) == 1


def test_alias_and_custom_model_as_call_model(opper, stack, fake_provider):
    extra = {"api_base": f"{fake_provider.url}/v1", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    opper.language_models.register_custom(name="house-llama", identifier="llama-house", extra=extra, api_key="sk-h")
    down = f"fake/down?fail=503&run={uuid.uuid4().hex}"
    opper.language_models.create_alias(name="house", fallback_models=[down, "house-llama"])

    direct = opper.call(name="custom-call", instructions="Answer", input="hello there", model="house-llama")
    assert direct.message.startswith("[simulated]")
    usage = direct.usage
    assert direct.cost["generation"] == pytest.approx(usage["input_tokens"] * 1e-6 + usage["output_tokens"] * 2e-6)

    via_alias = opper.call(
        name="alias-call", instructions="Answer", input="hello again", model={"name": "house", "options": {"seed": 7}}
    )
    assert via_alias.message.startswith("[simulated]")
    received = [r for r in fake_provider.stats()["recent"] if r["body"].get("model") == "llama-house"]
    assert received[-1]["body"]["seed"] == 7  # the alias entry's options reach each expanded model
    assert received[-1]["headers"]["authorization"] == "Bearer <redacted>"  # its own key was sent

    with pytest.raises(errors.BadRequestError) as unknown:
        Opper(http_bearer=stack.new_key(), server_url=stack.v2).call(name="x", input="hi", model="house")
    assert "house" in unknown.value.data.message  # another project has no such alias

    embedded = opper.embeddings.create(input="hello", model="house-llama")  # its endpoint's /embeddings
    assert embedded.model == "house-llama" and len(embedded.data[0]["embedding"]) == 256
