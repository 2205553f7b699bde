"""A call whose first request went through a provider's batch API.

`first_request` builds the request the synchronous path's first attempt would send (same prompt,
same native structured-output mode). `complete_from_batch` takes the batch's answer to it as that
first attempt and carries on exactly as `complete_task` would: the answer is parsed and validated,
an out-of-schema answer is re-asked, a provider error moves on to the next model, and so on. The
first attempt is priced at the batch price; every other attempt at the ordinary one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from app.engine import prompts
from app.engine.admission import CallAdmission
from app.engine.deps import EngineDeps
from app.engine.fallback import FallbackChain, build_request
from app.engine.observer import AttemptObserver, CacheHit, ObservedAttempt
from app.engine.results import AttemptRecord, CallResult, Cost
from app.engine.structured import supports_native
from app.engine.task import Example, ModelSpec, TaskSpec
from app.errors import BadRequest, ProviderError, TaskFailed
from app.providers.base import Completion, CompletionRequest, ModelResolver, ResolvedModel, Usage
from app.ratelimit import Permit

BatchAnswer = Completion | ProviderError | None
"""What the provider batch gave for an item: an answer, an error, or nothing (expired: never run)."""


@dataclass(frozen=True)
class FirstRequest:
    spec: ModelSpec
    resolved: ResolvedModel
    request: CompletionRequest


def first_request(task: TaskSpec, resolver: ModelResolver, *, extra_examples: Sequence[Example] = ()) -> FirstRequest:
    if not task.models:
        raise BadRequest("no model to run the task on", field_name="model")
    spec = task.models[0]
    resolved = resolver.resolve(spec.name)
    schema = task.output_schema or None
    native = supports_native(schema)
    messages = prompts.build_messages(task, extra_examples=extra_examples, native_schema=native)
    return FirstRequest(spec, resolved, build_request(spec, resolved, schema, native, messages))


class _AnsweredOnce:
    """The first model's adapter, whose first request is answered by the provider batch."""

    def __init__(self, provider, answer: Completion | ProviderError) -> None:  # noqa: ANN001 - any Provider
        self.name = provider.name
        self._provider = provider
        self._answer: Completion | ProviderError | None = answer

    async def complete(self, request: CompletionRequest) -> Completion:
        answer, self._answer = self._answer, None
        if answer is None:
            return await self._provider.complete(request)
        if isinstance(answer, ProviderError):
            raise answer
        return answer

    def stream(self, request: CompletionRequest):  # noqa: ANN201 - never streamed: batch calls complete
        return self._provider.stream(request)


class _Resolver:
    def __init__(self, inner: ModelResolver, first: str, answer: Completion | ProviderError) -> None:
        self._inner = inner
        self._first: str | None = first
        self._answer = answer

    def resolve(self, model_name: str) -> ResolvedModel:
        resolved = self._inner.resolve(model_name)
        if model_name != self._first:
            return resolved
        self._first = None  # only the chain's first entry (a model may appear twice in a chain)
        return replace(resolved, provider=_AnsweredOnce(resolved.provider, self._answer))


@dataclass
class _Admission(CallAdmission):
    """The batch-answered request takes no rate-limit permit: it was not sent now."""

    free: bool = True

    async def admit(self, model: str, resolved: ResolvedModel, request: CompletionRequest) -> Permit | None:
        if self.free:
            self.free = False
            self.sent = True
            return None
        return await super().admit(model, resolved, request)


async def complete_from_batch(
    task: TaskSpec,
    deps: EngineDeps,
    answer: BatchAnswer,
    *,
    extra_examples: Sequence[Example] = (),
    priority: int = 0,
) -> CallResult:
    """The call, its first attempt being `answer`; raises TaskFailed as `complete_task` does.
    With no answer (the line expired) the call runs from its first attempt, at the ordinary price."""
    first = task.models[0].name if task.models else ""
    resolver = deps.resolver if answer is None else _Resolver(deps.resolver, first, answer)
    observer = deps.observer
    if observer is not None and answer is not None:
        observer = _NamingBatchAnswer(observer, first)
    # One attempt span per answer (and per re-ask or fallback after it), under the item's span that the
    # provider-batch driver opens (app/services/provider_batches.py), as on the queue.
    chain = FallbackChain(replace(deps, resolver=resolver, observer=observer))
    admission = _Admission(deps.rate_limiter, priority=priority, free=answer is not None)
    try:
        result = await chain.run(task, extra_examples=extra_examples, admission=admission)
    except TaskFailed as failed:
        if answer is None:
            raise
        records = _repriced(failed.records, first, deps)
        raise TaskFailed(failed.attempts, usage=failed.usage, records=records) from None
    if answer is None:
        return result
    records = _repriced(result.attempts, first, deps)
    return replace(result, attempts=records, cost=sum((r.cost for r in records), Cost()))


class _NamingBatchAnswer:
    """The observer, told which attempt the provider batch answered (the first model's first)."""

    def __init__(self, inner: AttemptObserver, first: str) -> None:
        self._inner = inner
        self._first: str | None = first

    def attempt_ended(self, attempt: ObservedAttempt) -> None:
        if self._first is not None and attempt.record.model == self._first and attempt.record.attempt == 1:
            self._first = None
            attempt = replace(attempt, from_provider_batch=True)
        self._inner.attempt_ended(attempt)

    def answered_from_cache(self, hit: CacheHit) -> None:
        self._inner.answered_from_cache(hit)


def _repriced(records: Sequence[AttemptRecord], first: str, deps: EngineDeps) -> tuple[AttemptRecord, ...]:
    """The batch-answered attempt (the first model's first) at the batch price."""
    out = list(records)
    for index, record in enumerate(out):
        if record.model == first and record.attempt == 1:
            usage = record.usage if record.usage is not None else Usage()
            out[index] = replace(record, cost=deps.prices.batch_cost(first, usage, deps.platform_fee_rate))
            break
    return tuple(out)
