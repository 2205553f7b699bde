"""`/v2/models` over HTTP: paging, custom models and aliases (secrets, isolation, 400/404/409 bodies),
`ModelCatalog.expand`, and the custom model adapter running against the fake provider."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from app.engine.cost import PriceTable
from app.engine.deps import EngineDeps
from app.engine.executor import complete_task
from app.engine.task import ModelSpec, TaskSpec
from app.errors import BadRequest, ProviderRejected
from app.providers.base import Completion, CompletionRequest, Message, TextDelta
from app.providers.registry import ProviderRegistry
from app.schemas.models import CustomModelCreate
from app.secrets import SecretBox
from app.services.model_catalog import ModelCatalog
from app.store.projects import ProjectRepository
from app.store.tables_models import CustomModel
from tests.stack import start_stack

SECRET = "test-secret-" + uuid.uuid4().hex
API_KEY = "sk-custom-" + uuid.uuid4().hex  # a provider key that must never come back


@pytest.fixture(scope="module")
def stack(fake_provider):
    running = start_stack(
        fake_provider.url,
        CONVEYOR_SECRET_KEY=SECRET,
        CONVEYOR_CUSTOM_MODEL_CACHE_SECONDS="0",
    )
    yield running
    running.stop()


def project_of(stack, key: str) -> str:
    return ProjectRepository(stack.db).project_for_key(key).id


def register(client, name: str, fake_url: str, **extra) -> dict:
    body = {"name": name, "identifier": "llama-local", "extra": {"api_base": f"{fake_url}/v1", **extra}}
    response = client.post("/models/custom", json={**body, "api_key": API_KEY})
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response, status: int, error_type: str, phrase: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == error_type and "detail" in body and body["message"]
    assert phrase in str(body["detail"]) + body["message"], body
    return body


# --- models list and paging ------------------------------------------------------------------------


def test_models_list_pages_the_price_table(stack, key):
    table = PriceTable.from_path(None).models()
    with stack.client(key) as client:
        everything = client.get("/models", params={"offset": 0, "limit": 1000}).json()
        page = client.get("/models", params={"offset": 2, "limit": 3}).json()
    assert everything["meta"]["total_count"] == len(table) == len(everything["data"])
    assert [m["name"] for m in everything["data"]] == [p.name for p in table]
    assert page["meta"]["total_count"] == len(table)
    assert [m["name"] for m in page["data"]] == [p.name for p in table[2:5]]
    mini = next(m for m in everything["data"] if m["name"] == "openai/gpt-4o-mini")
    assert mini == {
        "hosting_provider": "openai",
        "name": "openai/gpt-4o-mini",
        "location": "us",
        "input_cost_per_token": pytest.approx(0.15e-6),
        "output_cost_per_token": pytest.approx(0.6e-6),
    }


@pytest.mark.parametrize("path", ["/models", "/models/custom", "/models/aliases"])
@pytest.mark.parametrize(
    ("params", "field"), [({"limit": 1001}, "limit"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset")]
)
def test_paging_out_of_bounds_is_400(stack, key, path, params, field):
    with stack.client(key) as client:
        body = assert_error(client.get(path, params=params), 400, "BadRequestError", field)
    assert body["detail"].startswith(f"{field}: ")


# --- custom models -------------------------------------------------------------------------------


def test_api_key_is_stored_encrypted_and_never_returned(stack, key, fake_provider):
    with stack.client(key) as client:
        created = register(client, "team/llama-3.1", fake_provider.url, input_cost_per_million=2)
        responses = [
            client.get(f"/models/custom/{created['id']}"),
            client.get("/models/custom/by-name/team/llama-3.1"),
            client.get("/models/custom"),
            client.patch(f"/models/custom/{created['id']}", json={"identifier": "llama-2"}),
        ]
    assert set(created) == {"id", "name", "identifier", "extra"}
    assert created["extra"] == {"api_base": f"{fake_provider.url}/v1", "input_cost_per_million": 2}
    for response in responses:
        assert response.status_code == 200 and API_KEY not in response.text and "api_key" not in response.text
    with stack.db.transaction() as session:
        stored = session.get(CustomModel, created["id"]).api_key_encrypted
    assert API_KEY not in stored and SecretBox(SECRET).decrypt(stored) == API_KEY


def test_custom_model_patch_semantics(stack, key, fake_provider):
    with stack.client(key) as client:
        created = register(client, "patchable", fake_provider.url, note="a")
        renamed = client.patch(f"/models/custom/{created['id']}", json={"name": "patched", "extra": None}).json()
        assert renamed["name"] == "patched" and renamed["extra"] == created["extra"]  # null extra: unchanged
        replaced = client.patch(f"/models/custom/{created['id']}", json={"extra": {"api_base": "http://x/v1"}})
        assert replaced.json()["extra"] == {"api_base": "http://x/v1"}
        cleared = client.patch(f"/models/custom/{created['id']}", json={"api_key": None})
        assert cleared.status_code == 200
        bad = client.patch(f"/models/custom/{created['id']}", json={"extra": {"note": "no endpoint"}})
        assert_error(bad, 400, "BadRequestError", "extra.api_base")
    with stack.db.transaction() as session:
        assert session.get(CustomModel, created["id"]).api_key_encrypted is None


@pytest.mark.parametrize(
    ("extra", "field"),
    [({}, "extra.api_base"), ({"api_base": "http://h/v1", "api_key": "sk"}, "extra.api_key")],
)
def test_custom_model_bad_extra_is_400_and_nothing_stored(stack, key, extra, field):
    with stack.client(key) as client:
        response = client.post("/models/custom", json={"name": "bad", "identifier": "x", "extra": extra})
        assert_error(response, 400, "BadRequestError", field)
        assert client.get("/models/custom").json()["meta"]["total_count"] == 0


def test_api_key_without_a_secret_is_refused_saying_what_to_set(stack, key):
    catalog = ModelCatalog(stack.db, None)
    body = CustomModelCreate(name="m", identifier="x", extra={"api_base": "http://h/v1"}, api_key="sk-1")
    with pytest.raises(BadRequest) as info:
        catalog.register_custom(project_of(stack, key), body)
    assert info.value.field_name == "api_key" and "CONVEYOR_SECRET_KEY" in info.value.message
    # Without a key to store, a model needs no secret.
    assert catalog.register_custom(project_of(stack, key), body.model_copy(update={"api_key": None})).name == "m"


def test_custom_model_conflicts_and_not_found(stack, key, fake_provider):
    with stack.client(key) as client:
        first = register(client, "dup", fake_provider.url)
        other = register(client, "other", fake_provider.url)
        again = client.post("/models/custom", json={"name": "dup", "identifier": "y", "extra": first["extra"]})
        assert_error(again, 409, "ConflictError", "dup")
        assert_error(client.patch(f"/models/custom/{other['id']}", json={"name": "dup"}), 409, "ConflictError", "dup")
        missing = str(uuid.uuid4())
        assert_error(client.get(f"/models/custom/{missing}"), 404, "NotFoundError", missing)
        assert_error(client.get("/models/custom/by-name/nope/x.y"), 404, "NotFoundError", "nope/x.y")
        assert client.delete(f"/models/custom/{first['id']}").status_code == 204
        assert_error(client.delete(f"/models/custom/{first['id']}"), 404, "NotFoundError", first["id"])


def test_custom_models_are_isolated_between_projects(stack, key, fake_provider):
    with stack.client(key) as mine, stack.client(stack.new_key()) as theirs:
        created = register(mine, "private", fake_provider.url)
        assert_error(theirs.get(f"/models/custom/{created['id']}"), 404, "NotFoundError", "")
        assert_error(theirs.get("/models/custom/by-name/private"), 404, "NotFoundError", "")
        assert_error(theirs.patch(f"/models/custom/{created['id']}", json={"name": "x"}), 404, "NotFoundError", "")
        assert_error(theirs.delete(f"/models/custom/{created['id']}"), 404, "NotFoundError", "")
        assert theirs.get("/models/custom").json() == {"meta": {"total_count": 0}, "data": []}
        assert register(theirs, "private", fake_provider.url)["id"] != created["id"]  # names are per project
        assert mine.get(f"/models/custom/{created['id']}").json()["name"] == "private"


# --- aliases ---------------------------------------------------------------------------------------


def test_alias_crud_cycles_and_isolation(stack, key):
    with stack.client(key) as client, stack.client(stack.new_key()) as theirs:
        a = client.post("/models/aliases", json={"name": "fast", "fallback_models": ["fake/a", "openai/gpt-4o-mini"]})
        assert a.status_code == 200
        alias = a.json()
        assert alias == {
            "id": alias["id"],
            "name": "fast",
            "fallback_models": ["fake/a", "openai/gpt-4o-mini"],
            "description": None,
        }
        dup = client.post("/models/aliases", json={"name": "fast", "fallback_models": ["fake/b"]})
        assert_error(dup, 409, "ConflictError", "fast")
        outer = client.post("/models/aliases", json={"name": "outer", "fallback_models": ["fast"], "description": "d"})
        cycle = client.patch(f"/models/aliases/{alias['id']}", json={"fallback_models": ["outer"]})
        assert_error(cycle, 400, "BadRequestError", "fast -> outer -> fast")
        self_ref = client.post("/models/aliases", json={"name": "loop", "fallback_models": ["loop"]})
        assert_error(self_ref, 400, "BadRequestError", "cycle")
        empty = client.post("/models/aliases", json={"name": "none", "fallback_models": []})
        assert empty.status_code == 422 and "fallback_models" in empty.text
        cleared = client.patch(f"/models/aliases/{outer.json()['id']}", json={"description": None}).json()
        assert cleared["description"] is None and cleared["fallback_models"] == ["fast"]
        listed = client.get("/models/aliases", params={"limit": 1, "offset": 1}).json()
        assert listed["meta"]["total_count"] == 2 and [x["name"] for x in listed["data"]] == ["outer"]
        assert_error(theirs.get(f"/models/aliases/{alias['id']}"), 404, "NotFoundError", "")
        assert_error(theirs.get("/models/aliases/by-name/fast"), 404, "NotFoundError", "")
        assert_error(theirs.delete(f"/models/aliases/{alias['id']}"), 404, "NotFoundError", "")
        assert theirs.get("/models/aliases").json()["meta"]["total_count"] == 0
        assert client.delete(f"/models/aliases/{alias['id']}").status_code == 204
        assert_error(client.get(f"/models/aliases/{alias['id']}"), 404, "NotFoundError", "")


# --- expand and the custom adapter ----------------------------------------------------------------


def test_expand_replaces_aliases_and_custom_names_only_within_the_project(stack, key, fake_provider):
    with stack.client(key) as client:
        custom = register(client, "my-llama", fake_provider.url)
        client.post("/models/aliases", json={"name": "inner", "fallback_models": ["my-llama", "fake/b"]})
        client.post("/models/aliases", json={"name": "best", "fallback_models": ["inner", "openai/gpt-4o"]})
    catalog = ModelCatalog(stack.db, SecretBox(SECRET))
    project = project_of(stack, key)
    options = {"temperature": 0.2}
    expanded = catalog.expand(project, (ModelSpec("best", options, {"x-h": "1"}), ModelSpec("fake/z")))
    assert expanded == (
        ModelSpec(f"custom/{custom['id']}", options, {"x-h": "1"}),
        ModelSpec("fake/b", options, {"x-h": "1"}),
        ModelSpec("openai/gpt-4o", options, {"x-h": "1"}),
        ModelSpec("fake/z"),
    )
    assert catalog.expand(project, (ModelSpec(f"custom/{custom['id']}"),)) == (ModelSpec(f"custom/{custom['id']}"),)
    stranger = project_of(stack, stack.new_key())
    # Another project sees neither the alias nor the custom model, and cannot name its id directly.
    assert catalog.expand(stranger, (ModelSpec("best"), ModelSpec("my-llama"))) == (
        ModelSpec("best"),
        ModelSpec("my-llama"),
    )
    with pytest.raises(BadRequest, match="unknown custom model") as info:
        catalog.expand(stranger, (ModelSpec(f"custom/{custom['id']}"),))
    assert info.value.field_name == "model"


def test_custom_model_runs_on_its_endpoint_with_its_key_and_prices(stack, key, fake_provider):
    with stack.client(key) as client:
        custom = register(client, "priced", fake_provider.url, input_cost_per_token=0.001, output_cost_per_million=3000)
    catalog = ModelCatalog.from_settings(stack.db, stack.settings)
    config = catalog.load_custom(custom["id"])
    assert config.api_key == API_KEY and config.identifier == "llama-local"
    registry = ProviderRegistry(stack.settings, custom_models=catalog.load_custom)
    deps = EngineDeps(resolver=registry, prices=PriceTable.from_path(None))
    registry.on_custom_model_loaded(deps.prices.set_custom_model_price)
    models = catalog.expand(project_of(stack, key), (ModelSpec("priced"),))
    task = TaskSpec(name="t", input="Say hi", models=models)

    async def run():
        result = await complete_task(task, deps, cache_scope="test")
        provider = registry.resolve(models[0].name).provider
        request = CompletionRequest(custom["id"], (Message("user", "stream please"),))
        events = [event async for event in provider.stream(request)]
        await registry.aclose()
        return result, events

    result, events = asyncio.run(run())
    assert result.message.startswith("[simulated]") and result.model == f"custom/{custom['id']}"
    usage = result.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert result.cost.generation == pytest.approx(usage.input_tokens * 0.001 + usage.output_tokens * 0.003)
    assert isinstance(events[-1], Completion) and any(isinstance(e, TextDelta) for e in events)
    sent = [r for r in fake_provider.stats()["recent"] if r["body"].get("model") == "llama-local"]
    assert sent and sent[-1]["headers"]["authorization"] == "Bearer <redacted>"


def test_deleted_custom_model_fails_the_attempt_not_the_worker(stack, key, fake_provider):
    with stack.client(key) as client:
        custom = register(client, "short-lived", fake_provider.url)
        client.delete(f"/models/custom/{custom['id']}")
    registry = ProviderRegistry(stack.settings, custom_models=ModelCatalog(stack.db, None).load_custom)
    provider = registry.resolve(f"custom/{custom['id']}").provider
    with pytest.raises(ProviderRejected, match="no such custom model"):
        asyncio.run(provider.complete(CompletionRequest(custom["id"], (Message("user", "hi"),))))


def test_custom_model_embeddings_use_its_endpoint(stack, key, fake_provider):
    with stack.client(key) as client:
        custom = register(client, "embedder", fake_provider.url)
    registry = ProviderRegistry(stack.settings, custom_models=ModelCatalog(stack.db, SecretBox(SECRET)).load_custom)

    async def embed():
        client = registry.embeddings(f"custom/{custom['id']}")
        result = await client.create(["alpha beta", "gamma"], options={"dimensions": 16})
        vectors = await client.embed(["alpha beta"])
        await registry.aclose()
        return result, vectors

    result, vectors = asyncio.run(embed())
    assert result.model == "llama-local" and [len(v) for v in result.vectors] == [16, 16]
    assert result.input_tokens == 3 and len(vectors[0]) == 256
    sent = [r for r in fake_provider.stats()["recent"] if r["path"] == "/v1/embeddings"]
    assert sent[-1]["headers"]["authorization"] == "Bearer <redacted>"
