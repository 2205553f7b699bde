"""The bounded loops of a call: attempts on one model, then the next model of the chain.

Per model, `StructuredAttemptLoop` asks, parses and validates, and re-asks with the validation
errors up to `max_attempts` times. A 429 with a short Retry-After is waited out on the same model
(without spending a structured attempt); any other provider error moves on to the next model at
once, because retrying a model that is down or rejecting the request only delays the fallback.
`FallbackChain` walks the models in order and fails with `TaskFailed` naming every attempt.
Every request goes through the call's `CallAdmission` (the global rate limiter, app/engine/admission.py).
Both take the process's `EngineDeps` whole (app/engine/deps.py) and a loop takes the call's `CallPlan`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.engine import prompts
from app.engine.admission import CallAdmission
from app.engine.deps import EngineDeps
from app.engine.observer import ObservedAttempt
from app.engine.results import AttemptRecord, CallResult, Cost
from app.engine.structured import may_be_object, parse_json_answer, supports_native, validate_instance
from app.engine.task import Example, ModelSpec, TaskSpec
from app.errors import (
    BadRequest,
    FailedAttempt,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    StructuredOutputError,
    TaskFailed,
)
from app.providers.base import Completion, CompletionRequest, Message, ResolvedModel, TextDelta, Usage

if TYPE_CHECKING:
    from app.engine.streaming import AttemptListener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallPlan:
    """What one call asks of every model of its chain, and whom it reports to: the per-call half of an
    attempt loop's inputs (the long-lived half is `EngineDeps`).

    `native`: the schema goes to the provider's structured-output mode. `listener`: set, each attempt is
    streamed and its deltas and failures reported. `admission`: the call's permits (one per call)."""

    schema: Mapping[str, Any] | None
    native: bool
    max_attempts: int
    listener: AttemptListener | None = None
    admission: CallAdmission = field(default_factory=CallAdmission)


@dataclass(frozen=True)
class Answer:
    """An accepted answer: text without an output schema, a validated JSON value with one."""

    message: str | None
    json_payload: Any


@dataclass(frozen=True)
class ModelRun:
    """What one model of the chain did: every request it got, and the answer if one was accepted."""

    records: tuple[AttemptRecord, ...]
    answer: Answer | None


def build_request(
    spec: ModelSpec,
    resolved: ResolvedModel,
    schema: Mapping[str, Any] | None,
    native: bool,
    messages: tuple[Message, ...],
) -> CompletionRequest:
    """The request one attempt sends (also each line of a provider batch: the same request)."""
    return CompletionRequest(
        model=resolved.model_id,
        messages=messages,
        options=spec.options,
        extra_headers=spec.extra_headers,
        json_schema=schema if native else None,
        # JSON-object mode would forbid the array or scalar that some non-native schemas ask for.
        json_mode=not native and may_be_object(schema),
    )


class StructuredAttemptLoop:
    """The attempts on one model: generate, parse, validate, re-ask; wait out short rate limits."""

    def __init__(self, spec: ModelSpec, resolved: ResolvedModel, deps: EngineDeps, plan: CallPlan) -> None:
        self.spec = spec
        self.resolved = resolved
        self.deps = deps
        self.plan = plan
        self.max_attempts = max(1, plan.max_attempts)
        self._partial: list[str] = []

    async def run(self, messages: tuple[Message, ...]) -> ModelRun:
        records: list[AttemptRecord] = []
        generations = waits = 0
        while generations < self.max_attempts:
            request = self._request(messages)
            # Raises RateLimitWaitExceeded (the call's first request only) when there is no room in time.
            permit = await self.plan.admission.admit(self.spec.name, self.resolved, request)
            started = self.deps.clock()
            try:
                # A plain completion is awaited as is: no frame of `_generate` per call in flight.
                generation = self._generate(request) if self.plan.listener else self.resolved.provider.complete(request)
                completion = await self.plan.admission.send(permit, generation)
            except ProviderRateLimited as err:
                records.append(self._failure(len(records) + 1, started, err))
                self._observe(request, records[-1])
                await self._report(records[-1])
                policy = self.deps.rate_limit
                wait = policy.default_wait if err.retry_after is None else err.retry_after
                # Slows the model down in every process, even when this call moves on to the next model.
                held = await self.plan.admission.rate_limited(self.spec.name, self.resolved, max(0.0, wait))
                if waits >= policy.retries or wait > policy.max_retry_after:
                    return ModelRun(tuple(records), None)
                waits += 1
                if not held:  # else the next permit waits out the pause: waiting here too would wait twice
                    await self.deps.sleep(max(0.0, wait))
                continue
            except ProviderError as err:
                records.append(self._failure(len(records) + 1, started, err))
                if self._partial:  # a stream that broke off: the span shows what had arrived
                    records[-1] = replace(records[-1], output_text="".join(self._partial))
                self._observe(request, records[-1])
                await self._report(records[-1])
                return ModelRun(tuple(records), None)
            generations += 1
            try:
                answer = self._accept(completion.text)
            except StructuredOutputError as err:
                records.append(self._failure(len(records) + 1, started, err, completion))
                self._observe(request, records[-1], completion)
                await self._report(records[-1])
                messages = prompts.reask_messages(messages, completion.text, err.errors or [err.message])
                continue
            records.append(self._record(len(records) + 1, started, completion))
            self._observe(request, records[-1], completion)
            return ModelRun(tuple(records), answer)
        return ModelRun(tuple(records), None)

    async def _generate(self, request: CompletionRequest) -> Completion:
        """One request streamed, its deltas forwarded to the plan's listener."""
        listener = self.plan.listener
        assert listener is not None
        self._partial = []
        completion: Completion | None = None
        async with aclosing(self.resolved.provider.stream(request)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    self._partial.append(event.text)
                    await listener.on_delta(event.text)
                else:
                    completion = event
        if completion is None:
            raise ProviderResponseError("the stream ended without a final message", model=self.spec.name)
        return completion

    def _observe(self, request: CompletionRequest, record: AttemptRecord, completion: Completion | None = None) -> None:
        if self.deps.observer is not None:
            self.deps.observer.attempt_ended(ObservedAttempt(record, self.resolved.provider.name, request, completion))

    async def _report(self, record: AttemptRecord) -> None:
        if self.plan.listener is not None:
            await self.plan.listener.on_attempt_failed(record)

    def _request(self, messages: tuple[Message, ...]) -> CompletionRequest:
        return build_request(self.spec, self.resolved, self.plan.schema, self.plan.native, messages)

    def _accept(self, text: str) -> Answer:
        schema = self.plan.schema
        if schema is None:
            return Answer(message=text, json_payload=None)
        value = parse_json_answer(text)
        errors = validate_instance(value, schema)
        if errors:
            raise StructuredOutputError("the answer does not match the output schema", errors=errors, raw_output=text)
        return Answer(message=None, json_payload=value)

    def _record(self, number: int, started: datetime, completion: Completion | None = None) -> AttemptRecord:
        usage = completion.usage if completion else Usage()
        return AttemptRecord(
            model=self.spec.name,
            attempt=number,
            started_at=started,
            ended_at=self.deps.clock(),
            usage=usage,
            cost=self.deps.prices.cost(self.spec.name, usage, self.deps.platform_fee_rate),
            output_text=completion.text if completion else None,
        )

    def _failure(
        self,
        number: int,
        started: datetime,
        err: ProviderError | StructuredOutputError,
        completion: Completion | None = None,
    ) -> AttemptRecord:
        message = err.message
        if isinstance(err, StructuredOutputError) and err.errors:
            message = f"{err.message}: {'; '.join(err.errors)}"
        log.info("attempt %d on %s failed: %s: %s", number, self.spec.name, err.error_type, message)
        return replace(self._record(number, started, completion), error_type=err.error_type, error_message=message)


class FallbackChain:
    """Runs a task on each model of its chain in order until one gives an accepted answer."""

    def __init__(self, deps: EngineDeps) -> None:
        self.deps = deps

    async def run(
        self,
        task: TaskSpec,
        *,
        extra_examples: Sequence[Example] = (),
        listener: AttemptListener | None = None,
        admission: CallAdmission | None = None,
    ) -> CallResult:
        """The first accepted answer; raises TaskFailed (with every attempt) when all models fail.

        With a `listener` every attempt is streamed from the provider and reported to it as it runs.
        `admission` (one per call) admits each request through the rate limiter; it raises
        `RateLimitWaitExceeded` out of here when the first request finds no room within its `max_wait`."""
        if not task.models:
            raise BadRequest("no model to run the task on", field_name="model")
        deps = self.deps
        started = deps.clock()
        # Resolve every model first: an unknown provider is a bug to report before spending tokens.
        chain = [(spec, deps.resolver.resolve(spec.name)) for spec in task.models]
        schema = task.output_schema or None
        native = supports_native(schema)
        plan = CallPlan(schema, native, task.config.max_attempts, listener, admission or CallAdmission())
        messages = prompts.build_messages(task, extra_examples=extra_examples, native_schema=native)
        records: list[AttemptRecord] = []
        for spec, resolved in chain:
            run = await StructuredAttemptLoop(spec, resolved, deps, plan).run(messages)
            records.extend(run.records)
            if run.answer is not None:
                return CallResult(
                    model=spec.name,
                    message=run.answer.message,
                    json_payload=run.answer.json_payload,
                    usage=_total_usage(records),
                    cost=sum((r.cost for r in records), Cost()),
                    attempts=tuple(records),
                    started_at=started,
                    ended_at=deps.clock(),
                )
            log.info("no accepted answer from %s after %d request(s)", spec.name, len(run.records))
        raise TaskFailed(
            [FailedAttempt(r.model, r.attempt, r.error_type or "", r.error_message or "") for r in records],
            usage=_total_usage(records),
            records=tuple(records),
        )


def _total_usage(records: Sequence[AttemptRecord]) -> Usage:
    return sum((r.usage for r in records), Usage())
