"""Users' regular expressions (`pattern`, `patternProperties`, format `regex`), matched by RE2 in linear time.

Python's `re` backtracks: `^(a+)+$` against 32 `a`s and a `!` runs for minutes and holds the thread it
runs on (the API's event loop, or a worker's). RE2 never backtracks, so a match costs time linear in the
text whatever the pattern. What RE2 cannot do in linear time (backreferences, lookaround) it refuses to
compile, and a schema using it is refused with a 400 rather than run on a backtracking engine.

`validator_class(base)` is a jsonschema validator class whose regex keywords and `regex` format go
through RE2. Patterns are compiled once and kept (schemas arrive as fresh dicts on every call). Matching
calls the RE2 object of `re2._re2` directly: the module's public `search` wraps it in a generator and
match objects, six times the cost of the match itself (google-re2 is pinned below 2 for this).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import re2
from jsonschema import FormatChecker, ValidationError, validators
from re2 import _re2

_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_NO_MATCH = (-1, -1)
# ECMA-262 (JSON Schema's regex dialect) writes a code point as \uFFFF, which RE2 spells \x{FFFF}. The
# lookbehind keeps an escaped backslash followed by `u` (`\\u0041`, a literal backslash) as it is.
_ECMA_UNICODE_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9A-Fa-f]{4})")


class UnsupportedPattern(ValueError):
    """A pattern RE2 cannot compile: invalid, or a feature that needs backtracking."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(
            f"the regular expression {pattern!r} cannot be used: {reason} (patterns run on RE2 in linear "
            "time: backreferences and lookaround are not supported)"
        )
        self.pattern = pattern
        self.reason = reason


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any:
    """The RE2 program for `pattern`; raises UnsupportedPattern (failures are not cached)."""
    options = re2.Options()
    options.never_capture = True  # only "does it match" is asked: no groups to track
    options.log_errors = False  # a refused user pattern is the user's error, not a line on our stderr
    try:
        program = _re2.RE2(_ECMA_UNICODE_ESCAPE.sub(r"\1\\x{\2}", pattern).encode("utf-8", "surrogatepass"), options)
    except UnicodeEncodeError as err:  # unreachable through the API (lone surrogates are refused), kept safe
        raise UnsupportedPattern(pattern, str(err)) from None
    if not program.ok():
        raise UnsupportedPattern(pattern, program.error().decode("utf-8", "replace"))
    return program


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (JSON Schema's `pattern` is unanchored)."""
    data = text.encode("utf-8", "surrogatepass")
    return compiled(pattern).Match(_UNANCHORED, data, 0, len(data))[0] != _NO_MATCH


def _is_regex(instance: object) -> bool:
    if isinstance(instance, str):
        compiled(instance)
    return True


# --- jsonschema keywords over RE2 (same results and messages as jsonschema's own) ------------------


def _pattern(validator: Any, patrn: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not search(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for patrn, subschema in patterns.items():
        for key, value in instance.items():
            if search(patrn, key):
                yield from validator.descend(value, subschema, path=key, schema_path=patrn)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = {key for key in instance if key not in properties and not any(search(patrn, key) for patrn in patterns)}
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            listed = ", ".join(repr(each) for each in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")
        else:
            unexpected = ", ".join(repr(each) for each in sorted(extras, key=str))
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({unexpected} {verb} unexpected)")


_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


def format_checker(base: type) -> FormatChecker:
    """`base`'s format checker with `regex` checked by RE2 (the stock one compiles with `re`)."""
    checker = FormatChecker(formats=())
    checker.checkers = dict(base.FORMAT_CHECKER.checkers)
    checker.checks("regex", raises=UnsupportedPattern)(_is_regex)
    return checker


@lru_cache(maxsize=16)
def validator_class(base: type) -> type:
    """`base` (a jsonschema draft's validator class) with every user regex matched by RE2.

    `unevaluatedProperties` still matches `patternProperties` with `re` inside jsonschema, so
    `check_schema` refuses schemas that use both (see `structured.py`).
    """
    keywords = {name: fn for name, fn in _KEYWORDS.items() if name in base.VALIDATORS}
    return validators.extend(base, keywords, format_checker=format_checker(base))
