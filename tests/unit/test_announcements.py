"""The done announcement carries a small ending whole, and only the status when it is large."""

from __future__ import annotations

from app.services.announcements import MAX_INLINE_BYTES, JobEnding, decode_ending, encode_ending
from app.store.tables import JobStatus


def test_a_small_ending_travels_whole():
    result = {"json_payload": {"answer": "ünïcode"}, "span_id": "s"}
    message = encode_ending(JobStatus.succeeded, result, None)
    assert decode_ending(message.encode()) == JobEnding(JobStatus.succeeded, result, None)
    error = {"type": "TaskFailedError", "message": "m", "detail": {"attempts": []}, "status_code": 502}
    assert decode_ending(encode_ending(JobStatus.failed, None, error)) == JobEnding(JobStatus.failed, None, error)


def test_a_large_ending_sends_only_its_status_and_the_reader_reads_the_job():
    message = encode_ending(JobStatus.succeeded, {"text": "x" * MAX_INLINE_BYTES}, None)
    assert message == "succeeded"
    assert decode_ending(message.encode()) is None


def test_anything_else_on_the_channel_means_read_the_job():
    for data in (None, b"", b"cancelled", b"{not json", b'{"status": "nonsense"}', b'{"result": {}}'):
        assert decode_ending(data) is None
