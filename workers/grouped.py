"""Group commit on the worker's loop: requests made while a group is being written wait for the next
group, which takes them all.

A worker starting or ending hundreds of jobs a second would spend a pooled connection, a round trip
and a statement's CPU on each; that CPU is what bounds how many calls one process carries. Grouping
this way adds no delay to a lone request (it is written at once) and lets a burst share statements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Writes a group; returns one outcome per request, in order: a result, or the exception to raise in it.
WriteGroup = Callable[[list[T]], Awaitable[list[R | Exception]]]


class Grouped(Generic[T, R]):
    """Loop-only: `submit` is awaited on the worker's event loop."""

    def __init__(self, write: WriteGroup, *, max_group: int = 500, groups_at_once: int = 1) -> None:
        self.write = write
        self.max_group = max_group
        self.groups_at_once = groups_at_once
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writing = 0

    async def submit(self, request: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._writing < self.groups_at_once:
            self._start_group()
        return await future

    def _start_group(self) -> None:
        group, self._waiting = self._waiting[: self.max_group], self._waiting[self.max_group :]
        self._writing += 1
        asyncio.ensure_future(self._write(group))

    async def _write(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes: list[R | Exception] = await self.write([request for request, _ in group])
        except Exception as error:  # the group failed as a whole: every request hears it
            outcomes = [error] * len(group)
        finally:
            self._writing -= 1
            if self._waiting:
                self._start_group()
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():  # its job stopped waiting (the loop is shutting down)
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
