"""What a worker publishes on a job's "done" channel, and how the API reads it.

The message carries the job's final status and, when it is small, its stored result or error, so a
waiting `/v2/call` answers from the announcement instead of reading the job back (a round trip, a
thread hop and a row's decoding per call). It is published only after the ending is committed, so
it never says more than the database does; a waiter that gets a bare status (a large result, a
cancellation, an older worker) reads the job as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.store.tables import JobStatus

MAX_INLINE_BYTES = 64 * 1024  # larger results are read from the database by whoever wants them


@dataclass(frozen=True)
class JobEnding:
    status: JobStatus
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def encode_ending(status: JobStatus, result: dict[str, Any] | None, error: dict[str, Any] | None) -> str:
    """The done message: `{"status", "result", "error"}` when it fits, else the bare status."""
    message = json.dumps({"status": status.value, "result": result, "error": error}, separators=(",", ":"))
    return message if len(message) <= MAX_INLINE_BYTES else status.value


def decode_ending(data: bytes | str | None) -> JobEnding | None:
    """The ending a done message carries in full; None when it is a bare status (read the job)."""
    if not data or not (data.startswith(b"{") if isinstance(data, bytes) else data.startswith("{")):
        return None
    try:
        fields = json.loads(data)
        return JobEnding(JobStatus(fields["status"]), fields.get("result"), fields.get("error"))
    except (ValueError, KeyError, TypeError):
        return None
