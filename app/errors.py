"""The one exception tree. Every error carries what a caller needs to act on it.

    ConveyorError                      status 500, never raised directly
    ├── BadRequest                     400  bad input: names the field and the reason
    ├── Unauthorized                   401  missing or unknown API key
    ├── NotFound                       404  unknown id, or another project's
    ├── Conflict                       409  name taken, request still being accepted
    ├── UnprocessableRequest           422  well-formed but unusable (idempotency key reused...)
    ├── ProviderError                  one failed request to a model provider (retryable flag)
    │   ├── ProviderTimeout            read/connect timeout
    │   ├── ProviderConnectionError    refused, reset, DNS
    │   ├── ProviderRateLimited        429; carries retry_after
    │   ├── ProviderServerError        5xx
    │   ├── ProviderRejected           other 4xx (bad request, bad key): not worth retrying as is
    │   └── ProviderResponseError      a 2xx whose body we cannot read
    ├── StructuredOutputError          the answer failed parsing or schema validation
    └── TaskFailed                     502  every model in the chain failed; carries every attempt

`ProviderError` and `StructuredOutputError` stay inside the engine: the fallback chain turns them into
attempt records and, when nothing is left to try, into one `TaskFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ConveyorError(Exception):
    status_code: int = 500
    error_type: str = "InternalServerError"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message


class BadRequest(ConveyorError):
    status_code = 400
    error_type = "BadRequestError"

    def __init__(self, message: str, *, field_name: str | None = None, detail: Any = None) -> None:
        self.field_name = field_name
        if detail is None and field_name:
            detail = f"{field_name}: {message}"
        super().__init__(message, detail=detail)


class Unauthorized(ConveyorError):
    status_code = 401
    error_type = "UnauthorizedError"


class NotFound(ConveyorError):
    status_code = 404
    error_type = "NotFoundError"


class Conflict(ConveyorError):
    status_code = 409
    error_type = "ConflictError"


class UnprocessableRequest(ConveyorError):
    status_code = 422
    error_type = "RequestValidationError"


# --- provider failures --------------------------------------------------------------------------


class ProviderError(ConveyorError):
    status_code = 502
    error_type = "ProviderError"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        model: str = "",
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.http_status = http_status
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    error_type = "ProviderTimeout"


class ProviderConnectionError(ProviderError):
    error_type = "ProviderConnectionError"


class ProviderRateLimited(ProviderError):
    error_type = "ProviderRateLimited"


class ProviderServerError(ProviderError):
    error_type = "ProviderServerError"


class ProviderRejected(ProviderError):
    error_type = "ProviderRejected"
    retryable = False


class ProviderResponseError(ProviderError):
    error_type = "ProviderResponseError"


class StructuredOutputError(ConveyorError):
    """The model answered, but not with JSON matching the output schema."""

    status_code = 502
    error_type = "StructuredOutputError"

    def __init__(self, message: str, *, errors: list[str] | None = None, raw_output: str = "") -> None:
        super().__init__(message)
        self.errors = errors or []
        self.raw_output = raw_output


@dataclass(frozen=True)
class FailedAttempt:
    """One attempt's failure, as reported to the caller in `TaskFailed.detail`."""

    model: str
    attempt: int
    error_type: str
    message: str


class TaskFailed(ConveyorError):
    """Every model in the chain was tried and none produced a valid answer."""

    status_code = 502
    error_type = "TaskFailedError"

    def __init__(self, attempts: list[FailedAttempt], *, usage: Any = None, records: Any = ()) -> None:
        self.attempts = list(attempts)
        self.usage = usage  # engine Usage summed over the attempts that reached a model
        self.records = tuple(records)  # engine AttemptRecords, so failed calls are traced and billed
        tried = ", ".join(dict.fromkeys(a.model for a in self.attempts)) or "no model"
        summary = f"the task failed on every model ({tried}) after {len(self.attempts)} attempt(s)"
        if self.attempts:
            last = self.attempts[-1]
            summary += f"; last error from {last.model}: {last.error_type}: {last.message}"
        super().__init__(
            summary,
            detail={
                "reason": summary,
                "attempts": [
                    {"model": a.model, "attempt": a.attempt, "error_type": a.error_type, "message": a.message}
                    for a in self.attempts
                ],
            },
        )


class ServiceUnavailable(ConveyorError):
    status_code = 503
    error_type = "ServiceUnavailableError"


class AcceptedJobUnavailable(ServiceUnavailable):
    """A waiting call whose job was accepted, but whose wait failed (the database went away): the answer
    names the job, so the caller polls it instead of sending the call again (a second job)."""

    def __init__(self, message: str, *, job_id: str, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.job_id = job_id


class CallTimedOut(ConveyorError):
    status_code = 504
    error_type = "CallTimeoutError"


class StoredJobError(ConveyorError):
    """A failed job's stored error, re-raised to the HTTP caller with its original status and type."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("message") or "the job failed", detail=body.get("detail"))
        self.status_code = int(body.get("status_code") or 502)
        self.error_type = body.get("type") or "TaskFailedError"
