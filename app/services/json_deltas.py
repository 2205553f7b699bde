"""Incremental JSON parsing into `(json_path, value)` deltas, for structured streaming.

A provider streams the JSON text of a structured answer in arbitrary pieces; the Opper stream wants
each piece as a scalar `delta` at the `json_path` it fills (`people[0].name`). `JsonDeltaParser.feed`
takes the pieces as they come and returns:

- string values as pieces of their (unescaped) content as soon as they arrive, one delta per string
  per feed, and `""` once for an empty string, so every string field is announced;
- numbers, booleans and null whole, once complete (a number is complete at the next delimiter, or at
  `close()` for a bare root number).

Keys, brackets, commas and whitespace produce nothing, so empty arrays and objects are not announced.
Paths: object keys joined with `.`, array indexes as `[i]`, a key that is not an identifier as
`["a key"]`; the root scalar's path is `""`. Prose before the first `{` or `[` (a model's preamble or
a code fence) is skipped, anything after the root value is ignored, and invalid JSON stops the deltas:
the stored result, validated once the answer is complete, stays the authority.

No library fits: ijson and json-stream yield a string only once it is complete, and partial-JSON
parsers re-parse the whole prefix on every piece (quadratic in the answer's length).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

Scalar = str | int | float | bool | None

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class PathDelta:
    path: str
    value: Scalar


@dataclass
class _Frame:
    is_object: bool
    state: str  # object: key | colon | value | after; array: value | after
    key: str = ""
    index: int = -1


def format_path(frames: list[_Frame]) -> str:
    path = ""
    for frame in frames:
        if not frame.is_object:
            path += f"[{frame.index}]"
        elif _IDENTIFIER.match(frame.key):
            path += f".{frame.key}" if path else frame.key
        else:
            path += f"[{json.dumps(frame.key, ensure_ascii=False)}]"
    return path


class JsonDeltaParser:
    def __init__(self, *, skip_prose: bool = True) -> None:
        self.skip_prose = skip_prose  # False when the schema's root may be a scalar
        self.reset()

    def reset(self) -> None:
        """Start over, for a new attempt's answer."""
        self._stack: list[_Frame] = []
        self._started = self._finished = self._broken = False
        self._token: str | None = None  # string | key | number | literal while inside one
        self._chars: list[str] = []  # the key, number or literal so far
        self._piece: list[str] = []  # string content not yet emitted
        self._announced = False  # the current string value emitted a delta
        self._escape: str | None = None  # "" right after a backslash, "u12" inside \\u escapes
        self._high_surrogate: int | None = None
        self._out: list[PathDelta] = []

    @property
    def broken(self) -> bool:
        return self._broken

    def feed(self, text: str) -> list[PathDelta]:
        for char in text:
            if self._finished or self._broken:
                break
            self._step(char)
        if self._token == "string" and self._piece:
            self._emit("".join(self._piece))
            self._piece = []
        out, self._out = self._out, []
        return out

    def close(self) -> list[PathDelta]:
        """The end of the answer: completes a bare root number."""
        if self._token == "number" and not self._broken:
            self._end_number()
        out, self._out = self._out, []
        return out

    # --- the state machine ---------------------------------------------------------------------

    def _step(self, char: str) -> None:
        if self._token in ("string", "key"):
            self._string_char(char)
            return
        if self._token == "number":
            if char in "0123456789+-.eE":
                self._chars.append(char)
                return
            self._end_number()
            if self._finished or self._broken:
                return
        elif self._token == "literal":
            self._literal_char(char)
            return
        self._structural(char)

    def _structural(self, char: str) -> None:
        if char in " \t\r\n":
            return
        if not self._started:
            if self.skip_prose and char not in "{[":
                return
            self._started = True
            self._begin_value(char)
            return
        frame = self._stack[-1]
        if frame.is_object:
            if frame.state == "key" and char == '"':
                self._token, self._chars = "key", []
            elif frame.state == "key" and char == "}":  # an empty object (or a trailing comma)
                self._close_container()
            elif frame.state == "colon" and char == ":":
                frame.state = "value"
            elif frame.state == "value":
                self._begin_value(char)
            elif frame.state == "after" and char == ",":
                frame.state = "key"
            elif frame.state == "after" and char == "}":
                self._close_container()
            else:
                self._broken = True
        elif frame.state == "value" and char == "]":  # an empty array (or a trailing comma)
            self._close_container()
        elif frame.state == "value":
            frame.index += 1
            self._begin_value(char)
        elif char == ",":
            frame.state = "value"
        elif char == "]":
            self._close_container()
        else:
            self._broken = True

    def _begin_value(self, char: str) -> None:
        if char == '"':
            self._token, self._piece, self._announced = "string", [], False
        elif char == "{":
            self._stack.append(_Frame(is_object=True, state="key"))
        elif char == "[":
            self._stack.append(_Frame(is_object=False, state="value"))
        elif char in "-0123456789":
            self._token, self._chars = "number", [char]
        elif char in "tfn":
            self._token, self._chars = "literal", [char]
        else:
            self._broken = True

    def _value_done(self) -> None:
        self._token = None
        if self._stack:
            self._stack[-1].state = "after"
        else:
            self._finished = True

    def _close_container(self) -> None:
        self._stack.pop()
        self._value_done()

    def _emit(self, value: Scalar) -> None:
        self._out.append(PathDelta(format_path(self._stack), value))
        self._announced = True

    # --- scalars -------------------------------------------------------------------------------

    def _end_number(self) -> None:
        try:
            value = json.loads("".join(self._chars))
        except ValueError:
            self._broken = True
            return
        self._emit(value)
        self._value_done()

    def _literal_char(self, char: str) -> None:
        self._chars.append(char)
        word = "".join(self._chars)
        if word in _LITERALS:
            self._emit(_LITERALS[word])
            self._value_done()
        elif not any(literal.startswith(word) for literal in _LITERALS):
            self._broken = True

    def _string_char(self, char: str) -> None:
        if self._escape is not None:
            self._escape_char(char)
        elif char == "\\":
            self._escape = ""
        elif char == '"':
            self._end_string()
        else:
            self._add(char)

    def _escape_char(self, char: str) -> None:
        if self._escape == "":
            if char == "u":
                self._escape = "u"
            elif char in _ESCAPES:
                self._escape = None
                self._add(_ESCAPES[char])
            else:
                self._broken = True
            return
        self._escape += char
        if len(self._escape) < 5:
            return
        try:
            code = int(self._escape[1:], 16)
        except ValueError:
            self._broken = True
            return
        self._escape = None
        if 0xD800 <= code < 0xDC00:
            self._high_surrogate = code
            return
        if 0xDC00 <= code < 0xE000 and self._high_surrogate is not None:
            code = 0x10000 + ((self._high_surrogate - 0xD800) << 10) + (code - 0xDC00)
            self._high_surrogate = None
        self._add(chr(code))

    def _add(self, char: str) -> None:
        if self._high_surrogate is not None:  # a high surrogate with no low one after it
            self._high_surrogate = None
            self._add("\ufffd")
        (self._chars if self._token == "key" else self._piece).append(char)

    def _end_string(self) -> None:
        if self._token == "key":
            frame = self._stack[-1]
            frame.key, frame.state, self._token = "".join(self._chars), "colon", None
            return
        if self._piece or not self._announced:
            self._emit("".join(self._piece))
            self._piece = []
        self._value_done()


_PATH_PART = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def parse_path(path: str) -> list[str | int]:
    """`people[0].name` → `["people", 0, "name"]` (the inverse of the parser's path format)."""
    parts: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_PART.match(path, position)
        if match is None:
            raise ValueError(f"not a json_path: {path!r}")
        key, index, quoted = match.groups()
        parts.append(key if key is not None else int(index) if index is not None else json.loads(quoted))
        position = match.end()
    return parts


def assemble(deltas: list[tuple[str, Scalar]]) -> Scalar | dict | list:
    """Rebuild the value from `(json_path, delta)` pairs: string deltas at one path are concatenated.
    What a client of a structured stream does (empty arrays and objects are not announced)."""
    root: dict[str, Scalar | dict | list] = {}
    for path, value in deltas:
        parent: dict | list = root
        slot: str | int = "$"
        for part in parse_path(path):
            if isinstance(parent, list):
                parent.extend([None] * (slot + 1 - len(parent)))
            if isinstance(parent, dict) and slot not in parent or parent[slot] is None:
                parent[slot] = [] if isinstance(part, int) else {}
            parent, slot = parent[slot], part
        if isinstance(parent, list):
            parent.extend([None] * (slot + 1 - len(parent)))
        current = parent[slot] if isinstance(parent, list) or slot in parent else None
        parent[slot] = current + value if isinstance(current, str) and isinstance(value, str) else value
    return root.get("$")
