"""The SSE line splitter of the provider wire: chunk boundaries anywhere, CRLF or LF, no length cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from app.providers.wire import split_lines


def lines_of(*chunks: bytes) -> list[str]:
    async def feed() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def collect() -> list[str]:
        return [line async for line in split_lines(feed())]

    return asyncio.run(collect())


def test_lines_split_across_chunks_and_line_endings() -> None:
    assert lines_of(b'data: {"a"', b": 1}\r\n\r", b"\ndata: [DONE]\n\n") == ['data: {"a": 1}', "", "data: [DONE]", ""]


def test_a_multibyte_character_split_between_chunks_survives() -> None:
    encoded = "data: åäö ✓\n".encode()
    assert lines_of(encoded[:8], encoded[8:]) == ["data: åäö ✓"]


def test_a_line_longer_than_aiohttps_readline_buffer_is_one_line() -> None:
    long = b"data: " + b"x" * 200_000
    assert lines_of(long[:70_000], long[70_000:], b"\n") == [long.decode()]


def test_a_last_line_without_a_newline_is_kept() -> None:
    assert lines_of(b"data: one\ndata: two") == ["data: one", "data: two"]
