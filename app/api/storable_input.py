"""Refuses, with a 400 naming the field, request values no store can keep (see `app/json_values.py`).

One place for every route: a NUL in the path or a query parameter, and in JSON bodies a NUL, a lone
surrogate, `NaN`, `Infinity` or an overflowing number such as `1e999`. Without it each reached the
database and came back as a 500 (closing the keep-alive connection). A JSON body is read whole here (the
route reads it whole anyway; `BodySizeLimit`, outside this, bounds it), checked, and handed on unchanged.
Bodies that are not JSON (batch uploads are multipart, streamed to disk) pass through untouched.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.json_values import UnstorableValue, loads

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_ON_LOOP_BYTES = 256 * 1024
_NUL_REASON = "contains a NUL character (\\u0000), which cannot be stored"


class StorableInput:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _url_problem(scope)
        if problem is None and scope["method"] in _BODY_METHODS and _is_json(scope):
            messages, body = await _read_body(receive)
            # ~2.6 ms a MiB: large bodies (batches of items) are checked off the event loop
            problem = (
                _body_problem(body) if len(body) < _ON_LOOP_BYTES else await run_in_threadpool(_body_problem, body)
            )
            receive = _replay(messages, receive)
        if problem is not None:
            await _refuse(send, problem)
            return
        await self.app(scope, receive, send)


def _url_problem(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return f"path: {_NUL_REASON}"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return f"{name.replace(chr(0), '') or 'query'}: {_NUL_REASON}"
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return True  # FastAPI reads a body without a content type as JSON


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """Every message up to the body's end (or a disconnect), and the body they carry."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    return messages, b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")


def _body_problem(body: bytes) -> str | None:
    if not body:
        return None
    try:
        loads(body)
    except UnstorableValue as err:
        return str(err)
    except (ValueError, RecursionError):  # not JSON at all: the route answers that in its own words
        return None
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives back the messages already read, then listens on (for the disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps(
        {"type": "BadRequestError", "message": "the request holds a value that cannot be stored", "detail": detail}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})
