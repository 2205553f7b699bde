"""How the API turns a job's stream messages and final state into Opper SSE chunks."""

from datetime import UTC, datetime

from app.services.streaming import ChunkWriter, sse_event
from app.store.jobs import JobRecord
from app.store.tables import JobStatus

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}}


def job(status: JobStatus, result=None, error=None) -> JobRecord:
    return JobRecord(
        id="j",
        project_id="p",
        status=status,
        span_id="s",
        trace_id="t",
        task={"name": "n"},
        function_id=None,
        revision_id=None,
        parent_span_id=None,
        result=result,
        error=error,
        delivery_attempts=1,
        created_at=datetime.now(UTC),
        started_at=None,
        finished_at=None,
    )


def test_sse_framing_is_one_data_line_and_a_blank_line():
    assert sse_event({"delta": "a\nb", "chunk_type": "text"}) == 'data: {"delta":"a\\nb","chunk_type":"text"}\n\n'


def test_text_and_json_deltas():
    text = ChunkWriter({"name": "n"}, function=False)
    assert text.delta("Hel") == [{"delta": "Hel", "chunk_type": "text"}]
    assert text.delta("") == []
    structured = ChunkWriter({"output_schema": SCHEMA}, function=False)
    assert structured.delta('{"name": "Jo') == [{"delta": "Jo", "json_path": "name", "chunk_type": "json"}]
    function = ChunkWriter({"output_schema": SCHEMA}, function=True)
    assert function.delta('{"name"') == [{"delta": '{"name"', "chunk_type": "json"}]


def test_a_reset_is_an_error_chunk_and_restarts_the_paths():
    writer = ChunkWriter({"output_schema": SCHEMA}, function=False)
    writer.delta('{"name": "x", "bro')
    assert writer.reset("StructuredOutputError", "retrying") == [
        {"chunk_type": "error", "error_type": "StructuredOutputError", "error_message": "retrying"}
    ]
    assert writer.delta('{"name": "y"}') == [{"delta": "y", "json_path": "name", "chunk_type": "json"}]


def test_the_end_reports_failures_and_cancellations():
    writer = ChunkWriter({"name": "n"}, function=False)
    assert writer.finish(job(JobStatus.succeeded, result={"message": "hi"})) == []
    failed = job(JobStatus.failed, error={"type": "TaskFailedError", "message": "every model failed"})
    assert writer.finish(failed) == [
        {"chunk_type": "error", "error_type": "TaskFailedError", "error_message": "every model failed"}
    ]
    assert writer.finish(job(JobStatus.cancelled))[0]["error_type"] == "JobCancelled"
    root_number = ChunkWriter({"output_schema": {"type": "integer"}}, function=False)
    assert root_number.delta("4") == []
    assert root_number.finish(job(JobStatus.succeeded)) == [{"delta": 4, "json_path": "", "chunk_type": "json"}]


def test_a_lost_end_replays_the_stored_answer():
    writer = ChunkWriter({"output_schema": SCHEMA}, function=False)
    assert writer.recover(job(JobStatus.succeeded, result={"json_payload": {"name": "Ann"}})) == [
        {"delta": "Ann", "json_path": "name", "chunk_type": "json"}
    ]
    shown = ChunkWriter({"name": "n"}, function=False)
    shown.delta("par")
    chunks = shown.recover(job(JobStatus.succeeded, result={"message": "partial and more"}))
    assert chunks[0]["error_type"] == "StreamInterrupted"
    assert chunks[1] == {"delta": "partial and more", "chunk_type": "text"}
