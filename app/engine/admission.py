"""The global rate limiter (app/ratelimit) on a call's path: a permit for every provider request.

Each request a call sends (the first, every re-ask, every retry after a 429, every fallback model)
takes a permit of its model right before it goes out and gives it back as soon as it ends, with the
tokens it actually used, so budgets count requests, not calls.

Only the call's first request is bound by `max_wait`. Once a call has sent a request, its later
requests wait as long as their budget requires (the job's time limit bounds them), ahead of the
fresh requests of the same priority in this process. So `RateLimitWaitExceeded` always means the
call sent nothing: its job can go back to the queue with nothing spent and nothing lost, where
giving up in the middle would throw away (unbilled) the attempts already paid for.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from app.errors import ProviderConnectionError, ProviderRateLimited, ProviderRejected
from app.providers.base import Completion, CompletionRequest, ResolvedModel
from app.ratelimit import Permit, RateLimiter, estimate_tokens

log = logging.getLogger(__name__)

# Failures after which the provider counted no tokens: the permit gives the whole estimate back.
# (A timeout, a 5xx, an unreadable answer or a broken stream may have run the model: the estimate stands.)
_NOTHING_USED = (ProviderRateLimited, ProviderConnectionError, ProviderRejected)

# Request options that cap the output, by provider naming; providers reserve the cap against TPM.
_OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


@dataclass
class CallAdmission:
    """Admits the provider requests of one call. Without a limiter it admits everything at once.

    `priority`: among this process's waiters for a model, higher goes first (interactive 1, batch 0).
    `max_wait`: seconds the first request may wait for room before `RateLimitWaitExceeded`; None: no limit.
    """

    limiter: RateLimiter | None = None
    priority: int = 1
    max_wait: float | None = None
    sent: bool = False  # a request of this call has been admitted (and so, presumably, sent)

    async def admit(self, model: str, resolved: ResolvedModel, request: CompletionRequest) -> Permit | None:
        """Wait for room for `request` on `model`; send the request with `send` and this permit. Raises
        `RateLimitWaitExceeded` (first request only) when the wait would exceed `max_wait`."""
        if self.limiter is None:
            return None
        first = not self.sent
        permit = await self.limiter.acquire(
            model,
            estimated_tokens=estimate_request_tokens(request),
            provider_key_id=resolved.provider_key_id,
            max_wait=self.max_wait if first else None,
            # A call already under way goes before fresh calls of its own priority, never before a higher one.
            priority=self.priority * 2 + (0 if first else 1),
        )
        self.sent = True
        return permit.keep_alive()  # renews its concurrency slot, if any, while a long generation runs

    def send(self, permit: Permit | None, request: Awaitable[Completion]) -> Awaitable[Completion]:
        """Await the provider request admitted with `permit`, then give the permit back with the tokens
        the request used (its usage; 0 when refused outright; the estimate when not known).
        The release is shielded: a cancelled call still frees its concurrency slot at once. With no
        permit to give back (no limiter, or a model without limits) the request is the awaitable itself:
        no frame of ours per call in flight."""
        if permit is None or permit.limits is None:
            return request
        return self._send(permit, request)

    async def _send(self, permit: Permit, request: Awaitable[Completion]) -> Completion:
        used: int | None = None
        try:
            completion = await request
            used = completion.usage.total_tokens or None  # no usage reported: not known
            return completion
        except _NOTHING_USED:
            used = 0
            raise
        finally:
            await asyncio.shield(permit.release(used))

    async def rate_limited(self, model: str, resolved: ResolvedModel, pause: float) -> bool:
        """A provider 429: pause the model for every process and slow it down. True when the limiter
        now holds this call's next request back for the pause itself (so the caller must not wait too)."""
        if self.limiter is None:
            return False
        try:
            held = await self.limiter.penalize(model, pause, provider_key_id=resolved.provider_key_id)
        except Exception:  # Redis unreachable: the caller waits the pause out itself, as without a limiter
            log.warning("could not record a provider rate limit", extra={"model": model}, exc_info=True)
            return False
        return held is not None


def estimate_request_tokens(request: CompletionRequest) -> int:
    """The tokens a request will count against a TPM budget: its messages and schema, plus its output cap."""
    text = "".join(message.content for message in request.messages)
    if request.json_schema is not None:
        text += json.dumps(request.json_schema)
    cap = next((request.options[name] for name in _OUTPUT_CAPS if name in request.options), None)
    return estimate_tokens(text, cap if isinstance(cap, int) and not isinstance(cap, bool) else None)
