"""A global, token-aware rate limiter in Redis: requests per minute, tokens per minute and concurrency
per model and provider key, shared by every process (see `app.ratelimit.lua` for the algorithms).

    limiter = RateLimiter(redis, RateLimitConfig.parse(settings.rate_limits), key_names=app.store.keys)
    permit = await limiter.acquire("openai/gpt-4o-mini", estimated_tokens=900, provider_key_id=key_id)
    try:
        completion = await provider.complete(request)          # permit.keep_alive() for long calls
    except ProviderRateLimited as err:
        await limiter.penalize("openai/gpt-4o-mini", err.retry_after or 1.0, provider_key_id=key_id)
        raise
    finally:
        await permit.release(actual_tokens)                    # None when the call used no tokens we know

Models without configured limits get a permit at once, without a Redis round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.errors import ConveyorError
from app.ratelimit import lua
from app.ratelimit.limits import ModelLimits, RateLimitConfig
from app.ratelimit.waitline import WaitLine

log = logging.getLogger("conveyor.ratelimit")

# A released permit can make room for these at once; other waits are exact and need no early wake-up.
_WAKE_ON_RELEASE = frozenset({"concurrency", "tpm"})
# Waits that may end sooner than announced: with a deadline, keep trying until it rather than failing fast.
_KEEP_TRYING = _WAKE_ON_RELEASE | {"unavailable"}
# Redis down or restarting: the head waiter retries with a backoff, the budgets being unknown meanwhile.
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
_MAX_BACKOFF = 2.0


class RateLimitWaitExceeded(ConveyorError):
    """`acquire(max_wait=...)` would have to wait longer than allowed; `retry_after` says how long."""

    status_code = 429
    error_type = "RateLimitedError"

    def __init__(self, model: str, reason: str, retry_after: float) -> None:
        super().__init__(f"rate limit of {model} ({reason}): no room for another {retry_after:.3f} s")
        self.model = model
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Decision:
    """One attempt's answer. Refused: `wait` seconds until it may fit, because of `reason`
    (`rpm`, `tpm`, `concurrency` (a poll interval: releases elsewhere are not announced), `penalty`,
    or, in `acquire` only, `unavailable`: Redis did not answer, retry after this backoff)."""

    permit: Permit | None
    wait: float = 0.0
    reason: str = ""


@dataclass(eq=False)
class Permit:
    """Room for one provider request. Release it exactly once, with the tokens actually used."""

    model: str
    provider_key_id: str
    estimated_tokens: int
    limits: ModelLimits | None  # None: the model is not limited, and the permit touches nothing
    slot_id: str = ""
    waited: float = 0.0  # seconds `acquire` waited for it
    _limiter: RateLimiter | None = field(default=None, repr=False)
    _renewer: asyncio.Task[None] | None = field(default=None, repr=False)
    released: bool = False

    async def release(self, actual_tokens: int | None = None) -> None:
        """Free the concurrency slot and correct the token budget by actual - estimated. Idempotent.
        Never raises: if Redis is unreachable the slot's lease runs out on its own."""
        if self.released:
            return
        self.released = True
        if self._renewer is not None:
            self._renewer.cancel()
        if self._limiter is not None and self.limits is not None:
            await self._limiter._release(self, actual_tokens)

    async def renew(self) -> bool:
        """Extend the slot's lease by the limiter's lease time. False if the slot had already been
        reclaimed (the holder looked dead); the request may go on, but the cap was briefly exceeded."""
        if self.released or not self.slot_id or self._limiter is None:
            return not self.released
        return await self._limiter._renew(self)

    def keep_alive(self, every: float | None = None) -> Permit:
        """Renew the lease in the background (every third of the lease by default) until released."""
        if self._renewer is None and self.slot_id and self._limiter is not None and not self.released:
            interval = every if every is not None else self._limiter.lease_seconds / 3
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever(interval))
        return self

    async def _renew_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.renew()
            except Exception:  # Redis hiccup: try again next time, the lease has slack
                log.warning("renewing a rate-limit slot failed", extra={"model": self.model}, exc_info=True)


class RateLimitKeyNames(Protocol):
    """How the limiter's Redis keys are spelled (app/store/keys.py, passed in)."""

    def rate_limit_budget(self, scope: str) -> str: ...

    def rate_limit_slots(self, scope: str) -> str: ...


class RateLimiter:
    """Admits provider requests within the configured budgets; use one instance per event loop."""

    def __init__(
        self,
        redis: aioredis.Redis,
        config: RateLimitConfig,
        *,
        key_names: RateLimitKeyNames,
        lease_seconds: float = 60.0,
        burst_seconds: float = 0.05,
        poll_seconds: float = 0.02,
        recovery_seconds: float = 60.0,
        min_rate_factor: float = 0.125,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        """`lease_seconds`: a concurrency slot not renewed for this long is reclaimed (its holder died).
        `burst_seconds`: scheduling slack absorbing late wake-ups (see `app.ratelimit.lua`).
        `poll_seconds`: how often a waiter rechecks a full concurrency cap for releases in other processes.
        `recovery_seconds`, `min_rate_factor`: a 429 halves the rate (not below this factor), which then
        recovers linearly to the full rate over this many seconds after the Retry-After pause.
        `on_wait(model, seconds)`: told each permit of a limited model and how long it waited (metrics)."""
        self.config = config
        self.key_names = key_names
        self.lease_seconds = lease_seconds
        self.burst_seconds = burst_seconds
        self.poll_seconds = poll_seconds
        self.recovery_seconds = recovery_seconds
        self.min_rate_factor = min_rate_factor
        self.on_wait = on_wait
        self._acquire = redis.register_script(lua.ACQUIRE)
        self._release_script = redis.register_script(lua.RELEASE)
        self._renew_script = redis.register_script(lua.RENEW)
        self._penalize = redis.register_script(lua.PENALIZE)
        self._lines: dict[str, WaitLine] = {}

    async def acquire(
        self,
        model: str,
        *,
        estimated_tokens: int,
        provider_key_id: str = "",
        max_wait: float | None = None,
        priority: int = 0,
    ) -> Permit:
        """Wait until the request fits every budget of the model, then return its permit.

        Raises `RateLimitWaitExceeded` as soon as it is clear the wait would exceed `max_wait`.
        Among this process's waiters for a model, a higher `priority` goes first. While Redis is
        unreachable (restarting) it keeps retrying, as a wait, rather than admitting unpaced requests."""
        limits = self.config.for_model(model, provider_key_id)
        if limits is None:
            return Permit(model, provider_key_id, estimated_tokens, None)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = None if max_wait is None else started + max_wait
        scope = _scope(model, provider_key_id)
        line = self._lines.setdefault(scope, WaitLine())
        try:
            await line.enter(priority, max_wait)
        except TimeoutError:
            self._forget_if_idle(scope, line)
            raise RateLimitWaitExceeded(model, "queue", 0.0) from None
        failures = 0
        try:
            while True:
                line.released.clear()
                try:
                    decision = await self.attempt(
                        model, estimated_tokens=estimated_tokens, provider_key_id=provider_key_id
                    )
                except _REDIS_DOWN as exc:
                    failures += 1
                    if failures == 1:
                        log.warning(
                            "rate limiter: Redis unreachable, waiting for it",
                            extra={"model": model, "error": repr(exc)},
                        )
                    decision = Decision(None, min(0.05 * 2**failures, _MAX_BACKOFF), "unavailable")
                if decision.permit is not None:
                    decision.permit.waited = loop.time() - started
                    if self.on_wait is not None:
                        self.on_wait(model, decision.permit.waited)
                    return decision.permit
                pause = decision.wait
                if deadline is not None:
                    remaining = deadline - loop.time()
                    # Exact waits fail fast; polls (a concurrency slot, Redis back) keep trying until the deadline.
                    if remaining <= 0 or (decision.reason not in _KEEP_TRYING and pause > remaining):
                        raise RateLimitWaitExceeded(model, decision.reason, pause)
                    pause = min(pause, remaining)
                await line.pause(pause, wake_on_release=decision.reason in _WAKE_ON_RELEASE)
        finally:
            line.leave()
            self._forget_if_idle(scope, line)

    async def try_acquire(self, model: str, *, estimated_tokens: int, provider_key_id: str = "") -> Permit | None:
        """A permit if the request fits now, else None (see `attempt` for how long to wait)."""
        decision = await self.attempt(model, estimated_tokens=estimated_tokens, provider_key_id=provider_key_id)
        return decision.permit

    async def attempt(self, model: str, *, estimated_tokens: int, provider_key_id: str = "") -> Decision:
        """One atomic check-and-take: a permit, or how long to wait and why. Never waits."""
        limits = self.config.for_model(model, provider_key_id)
        if limits is None:
            return Decision(Permit(model, provider_key_id, estimated_tokens, None))
        scope = _scope(model, provider_key_id)
        slot_id = uuid.uuid4().hex if limits.concurrency else ""
        args = [
            limits.rpm or 0,
            limits.tpm or 0,
            limits.concurrency or 0,
            max(0, estimated_tokens),
            slot_id,
            self.lease_seconds,
            self.burst_seconds,
            self.poll_seconds,
            self.recovery_seconds,
        ]
        call = asyncio.ensure_future(self._acquire(keys=self._keys(scope), args=args))
        permit = Permit(model, provider_key_id, estimated_tokens, limits, slot_id, _limiter=self)
        try:
            # Shielded: if our caller is cancelled after Redis granted, the grant is handed back.
            granted, wait, reason = await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(lambda done: _give_back(done, permit))
            raise
        if int(granted):
            return Decision(permit)
        return Decision(None, float(wait), _text(reason))

    async def penalize(self, model: str, retry_after: float, provider_key_id: str = "") -> float | None:
        """A provider answered 429: no acquire of this model (in any process) returns before
        `retry_after` seconds from now, and the first 429 of a pause halves the rate (recovering over
        `recovery_seconds`). Returns the pause now in force, or None if the model is not limited
        (configure it with `{}` to coordinate its 429 pauses without budgets)."""
        if self.config.for_model(model, provider_key_id) is None:
            return None
        budget = self.key_names.rate_limit_budget(_scope(model, provider_key_id))
        pause, factor = await self._penalize(
            keys=[budget], args=[max(0.0, retry_after), self.recovery_seconds, self.min_rate_factor]
        )
        log.info("provider rate limit: model paused", extra={"model": model, "pause": float(pause)})
        return float(pause)

    async def _release(self, permit: Permit, actual_tokens: int | None) -> None:
        limits = permit.limits or ModelLimits()
        delta = 0 if actual_tokens is None or not limits.tpm else actual_tokens - permit.estimated_tokens
        scope = _scope(permit.model, permit.provider_key_id)
        try:
            await self._release_script(
                keys=self._keys(scope), args=[permit.slot_id, limits.tpm or 0, delta, self.recovery_seconds]
            )
        except Exception:
            log.warning("releasing a rate-limit permit failed", extra={"model": permit.model}, exc_info=True)
        line = self._lines.get(scope)
        if line is not None:
            line.released.set()

    async def _renew(self, permit: Permit) -> bool:
        slots = self.key_names.rate_limit_slots(_scope(permit.model, permit.provider_key_id))
        return bool(int(await self._renew_script(keys=[slots], args=[permit.slot_id, self.lease_seconds])))

    def _keys(self, scope: str) -> list[str]:
        return [self.key_names.rate_limit_budget(scope), self.key_names.rate_limit_slots(scope)]

    def _forget_if_idle(self, scope: str, line: WaitLine) -> None:
        if line.idle and self._lines.get(scope) is line:
            del self._lines[scope]


def _scope(model: str, provider_key_id: str) -> str:
    return f"{model}|{provider_key_id}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _give_back(done: asyncio.Future, permit: Permit) -> None:
    """The acquire script answered after its caller was cancelled: release what it granted."""
    if done.cancelled() or done.exception() is not None or not int(done.result()[0]):
        return
    with contextlib.suppress(RuntimeError):  # the loop is closing: the lease runs out instead
        asyncio.get_running_loop().create_task(permit.release(0))
