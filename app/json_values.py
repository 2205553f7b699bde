"""JSON that every store can keep: no NUL character, no lone surrogate, no NaN or Infinity.

Python's `json` accepts all of these, yet PostgreSQL refuses U+0000 in `text` and `jsonb` and any
non-finite number in `jsonb`; a lone UTF-16 surrogate (`"\\ud800"`) is no character at all and cannot
be encoded as UTF-8; `NaN`, `Infinity` and `1e999` (which Python reads as infinity) are not JSON. Left
alone they surface as a 500 from the database long after the request was accepted. `loads` refuses them
up front with `UnstorableValue`, which names the path of the first offending value.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")


class UnstorableValue(ValueError):
    """`path` (`input.items[2].name`; empty for the whole document) holds a value no store can keep."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or 'body'}: {reason}")
        self.path = path
        self.reason = reason


class _NonFinite:
    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


class _NonFiniteFound(Exception):
    pass


def _finite(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _NonFiniteFound
    return value


def _no_constant(token: str) -> float:
    raise _NonFiniteFound


def _float(token: str) -> float | _NonFinite:
    value = float(token)
    return value if math.isfinite(value) else _NonFinite(token)


# Decoders built once (json.loads with hooks builds one per call, which doubles its cost on small bodies).
# The first stops at the first non-finite number; the second, used only then, marks each for `check`.
_FAST = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
_MARKING = json.JSONDecoder(parse_constant=_NonFinite, parse_float=_float)


def loads(raw: bytes | str) -> Any:
    """`json.loads`, raising UnstorableValue for a value `check` refuses or a number too long to read.

    Malformed JSON raises `json.JSONDecodeError` as usual. The tree is walked only when the text can hold
    a refused character (an escape, or raw surrogate bytes) or a non-finite number was read.
    """
    text = raw.decode(json.detect_encoding(raw), "surrogatepass") if isinstance(raw, bytes) else raw
    try:
        try:
            value = _FAST.decode(text)
        except _NonFiniteFound:
            value = _MARKING.decode(text)
            check(value)
    except (json.JSONDecodeError, UnstorableValue):
        raise
    except ValueError as err:  # an integer beyond Python's 4300-digit limit for reading numbers
        raise UnstorableValue("", f"a number cannot be read: {err}") from None
    if _may_hold_unstorable_text(raw):
        check(value)
    return value


def _may_hold_unstorable_text(raw: bytes | str) -> bool:
    # In bytes a NUL or surrogate arrives as a `\u` escape or as raw surrogate bytes (ED A0..BF: Python's
    # json decodes with surrogatepass); a raw NUL byte is a control character, which json refuses itself.
    if isinstance(raw, bytes):
        return b"\\u" in raw or b"\xed" in raw
    return "\\u" in raw or _UNSTORABLE_CHAR.search(raw) is not None


def check(value: Any) -> None:
    """Raise UnstorableValue naming the first path (depth first) whose key or value cannot be stored."""
    stack: list[tuple[str, Any]] = [("", value)]  # iterative: a body may nest thousands of levels deep
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            _check_text(path, node)
        elif isinstance(node, _NonFinite):
            raise UnstorableValue(path, f"{node.token} is not a JSON number (JSON has no NaN or Infinity)")
        elif isinstance(node, float) and not math.isfinite(node):
            raise UnstorableValue(path, f"{node} is not a JSON number (JSON has no NaN or Infinity)")
        elif isinstance(node, dict):
            for key, item in reversed(node.items()):
                child = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _UNSTORABLE_CHAR.search(key):
                    _check_text(f"{path or 'body'} (a key)", key)
                stack.append((child, item))
        elif isinstance(node, list):
            stack.extend((f"{path}[{index}]", item) for index, item in reversed(list(enumerate(node))))


def _check_text(path: str, text: str) -> None:
    found = _UNSTORABLE_CHAR.search(text)
    if found is None:
        return
    if found.group() == "\x00":
        raise UnstorableValue(path, "contains a NUL character (\\u0000), which cannot be stored")
    code = f"\\u{ord(found.group()):04x}"
    raise UnstorableValue(path, f"contains a lone UTF-16 surrogate ({code}), which is not a character")
