"""One call, one trace: the API's request span, the worker's job span and a `chat {model}` span per
model attempt, exported over OTLP (HTTP and gRPC) to real receivers from a real stack."""

from __future__ import annotations

import json
import uuid

from tests.tracing.receiver import OtlpGrpcReceiver
from tests.tracing.traced import SCHEMA, call, conveyor_trace_id, traced_stack, whole_call


def test_a_call_is_one_trace_across_api_worker_and_model(client, http_receiver) -> None:
    result = call(client, "openai/gpt-4o-mini")
    trace_id = conveyor_trace_id(client, result["span_id"])  # a root call's OTel trace is its Conveyor trace
    spans = whole_call(http_receiver, trace_id, attempts=1)
    (api,), (job,), (chat,) = spans["server"], spans["consumer"], spans["client"]

    assert (api.service, api.name, api.parent_span_id) == ("conveyor-api", "POST /v2/call", "")
    assert api.attributes["http.route"] == "/v2/call"
    assert api.attributes["http.response.status_code"] == 200
    assert (job.service, job.name, job.parent_span_id) == ("conveyor-worker", "conveyor.run_job", api.span_id)
    assert job.attributes["conveyor.job.status"] == "succeeded"
    assert (chat.service, chat.name, chat.parent_span_id) == ("conveyor-worker", "chat gpt-4o-mini", job.span_id)
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.provider.name"] == "openai"
    assert chat.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert chat.attributes["gen_ai.response.model"]
    assert chat.attributes["gen_ai.usage.input_tokens"] == result["usage"]["input_tokens"] > 0
    assert chat.attributes["gen_ai.usage.output_tokens"] == result["usage"]["output_tokens"] > 0
    assert chat.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert "error.type" not in chat.attributes and not chat.error
    # Without OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT no prompt or answer leaves the worker.
    assert not {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"} & set(chat.attributes)
    # The attempt span keeps the attempt's own times, inside the job's.
    assert job.start_ns <= chat.start_ns < chat.end_ns <= job.end_ns
    assert api.start_ns <= job.start_ns


def test_a_fallback_marks_the_failed_attempt_with_its_error_type(client, http_receiver) -> None:
    down = f"openai/gpt-4o-mini?fail=503&run={uuid.uuid4().hex[:8]}"
    result = call(client, [down, "anthropic/claude-sonnet-4"])
    spans = whole_call(http_receiver, conveyor_trace_id(client, result["span_id"]), attempts=2)
    failed, answered = sorted(spans["client"], key=lambda span: span.start_ns)
    (job,) = spans["consumer"]

    assert failed.parent_span_id == answered.parent_span_id == job.span_id
    assert failed.error and failed.attributes["error.type"] == "ProviderServerError"
    assert failed.attributes["gen_ai.provider.name"] == "openai"
    assert "gen_ai.response.model" not in failed.attributes  # the provider answered with an error
    assert not answered.error and "error.type" not in answered.attributes
    assert answered.name == "chat claude-sonnet-4"
    assert answered.attributes["gen_ai.provider.name"] == "anthropic"
    assert answered.attributes["gen_ai.usage.output_tokens"] > 0


def test_a_w3c_traceparent_puts_the_call_in_the_callers_trace(client, http_receiver) -> None:
    caller_trace, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    call(client, "openai/gpt-4o-mini", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})
    spans = whole_call(http_receiver, caller_trace, attempts=1)
    (api,), (job,) = spans["server"], spans["consumer"]
    assert api.parent_span_id == caller_span
    assert job.parent_span_id == api.span_id


def test_parent_span_id_puts_the_call_in_the_trace_of_that_span(client, http_receiver) -> None:
    created = client.post("/spans", json={"name": "my pipeline"})
    assert created.status_code in (200, 201), created.text
    parent = created.json()
    call(client, "openai/gpt-4o-mini", parent_span_id=parent["id"])
    spans = whole_call(http_receiver, uuid.UUID(parent["trace_id"]).hex, attempts=1)
    (api,), (job,) = spans["server"], spans["consumer"]
    assert api.parent_span_id == uuid.UUID(parent["id"]).hex[:16]
    assert job.parent_span_id == api.span_id


def test_other_requests_get_a_server_span_named_by_their_route(client, http_receiver) -> None:
    result = call(client, "openai/gpt-4o-mini")
    assert client.get(f"/spans/{result['span_id']}").status_code == 200
    span = http_receiver.wait_for(
        lambda spans: [s for s in spans if s.attributes.get("url.path") == f"/v2/spans/{result['span_id']}"]
    )[0]
    assert (span.name, span.kind, span.attributes["http.route"]) == (
        "GET /v2/spans/{span_id}",
        "server",
        "/v2/spans/{span_id}",
    )


def test_over_grpc_with_message_content(fake_provider) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports to the collector's gRPC service; with the content flag the
    chat span carries the prompt and the answer."""
    with OtlpGrpcReceiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
            "OTEL_SERVICE_NAME": "night-queue",
        }
        with traced_stack(fake_provider.url, env) as running, running.client(running.new_key()) as http:
            body = {
                "name": "traced",
                "instructions": "Answer briefly.",
                "input": "what is 6 x 7?",
                "model": "openai/gpt-4o-mini",
            }
            response = http.post("/call", json={**body, "output_schema": SCHEMA})
            assert response.status_code == 200, response.text
            trace_id = conveyor_trace_id(http, response.json()["span_id"])
            spans = whole_call(receiver, trace_id, attempts=1)
    (api,), (job,), (chat,) = spans["server"], spans["consumer"], spans["client"]
    assert {api.service, job.service, chat.service} == {"night-queue"}  # OTEL_SERVICE_NAME wins
    assert chat.parent_span_id == job.span_id and job.parent_span_id == api.span_id
    inputs = json.loads(chat.attributes["gen_ai.input.messages"])
    assert inputs[0]["role"] == "user" and "what is 6 x 7?" in inputs[0]["parts"][0]["content"]
    assert "Answer briefly." in chat.attributes["gen_ai.system_instructions"]
    (output,) = json.loads(chat.attributes["gen_ai.output.messages"])
    assert output["role"] == "assistant" and output["finish_reason"] == "stop"
    assert json.loads(output["parts"][0]["content"]) == response.json()["json_payload"]
