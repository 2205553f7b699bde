"""JSON Schema handling: checking user schemas, validating answers, and reading JSON out of model text.

Validators are compiled once per distinct schema (keyed on a canonical JSON dump, since schemas arrive
as fresh dicts on every call) and never fetch remote `$ref`s: the registry holds only the JSON Schema
meta-schemas, so a schema cannot make a worker open arbitrary URLs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jsonschema_specifications
from jsonschema import Draft202012Validator, exceptions, validators
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from app.engine.patterns import UnsupportedPattern, format_checker, validator_class
from app.errors import BadRequest, StructuredOutputError
from app.json_values import UnstorableValue, check, loads

_MAX_MESSAGE_CHARS = 300  # jsonschema messages embed the failing value, which can be huge
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\r?\n(.*?)```", re.DOTALL)


def canonical_json(value: Any) -> str:
    """One text per JSON value whatever the dict key order: the basis of cache keys and validator reuse."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- schemas ------------------------------------------------------------------------------------


def check_schema(schema: Any, field_name: str) -> None:
    """Raise `BadRequest(field_name=...)` when `schema` is not a usable JSON Schema (Draft 2020-12)."""
    if not isinstance(schema, Mapping):
        raise BadRequest("must be a JSON Schema object", field_name=field_name)
    # Callers send the same few schemas call after call; checking one against the metaschema costs
    # about a millisecond, so schemas found valid are remembered (by their canonical JSON).
    try:
        canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        canonical = None
    if canonical is None or len(canonical) > _MAX_REMEMBERED_SCHEMA_CHARS:
        _check_schema(schema, field_name)
    else:
        _check_canonical_schema(canonical, field_name)


_MAX_REMEMBERED_SCHEMA_CHARS = 64 * 1024


@lru_cache(maxsize=1024)
def _check_canonical_schema(canonical: str, field_name: str) -> None:
    """Only successes are cached: an invalid schema raises, and lru_cache keeps no exceptions."""
    _check_schema(json.loads(canonical), field_name)


def _check_schema(schema: Mapping[str, Any], field_name: str) -> None:
    cls = validators.validator_for(schema, default=Draft202012Validator)
    try:  # the metaschema marks patterns `format: regex`: RE2's format checker refuses what RE2 cannot run
        cls.check_schema(schema, format_checker=format_checker(cls))
    except exceptions.SchemaError as err:
        where = _json_path(err.path)
        if isinstance(err.cause, UnsupportedPattern):
            raise BadRequest(f"at {where}: {err.cause}", field_name=field_name) from err
        raise BadRequest(f"not a valid JSON Schema at {where}: {_short(err.message)}", field_name=field_name) from err
    broken = next(_broken_local_refs(schema), None)
    if broken is not None:
        raise BadRequest(f"`$ref` {broken!r} does not point into the schema", field_name=field_name)
    keywords = {key for node in _subschemas(schema) for key in node}
    if "unevaluatedProperties" in keywords and "patternProperties" in keywords:
        # jsonschema evaluates that pair with Python's backtracking `re` (see app/engine/patterns.py)
        raise BadRequest("`unevaluatedProperties` cannot be combined with `patternProperties`", field_name=field_name)


def supports_native(schema: Mapping[str, Any] | None) -> bool:
    """Whether providers' native structured output can take this schema: they require a root object."""
    if not schema:
        return False
    root = resolve_local_ref(schema, schema)
    kind = root.get("type")
    return kind == "object" or kind == ["object"]


def may_be_object(schema: Mapping[str, Any] | None) -> bool:
    """Whether an object can match at the root. Only then may a provider's JSON-object mode be used:
    that mode forces an object, which would make an array or scalar answer impossible."""
    return bool(schema) and _may_be_object(schema, schema, 0)


def _may_be_object(node: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> bool:
    if depth > 8:  # a self-referencing union: assume it can
        return True
    node = resolve_local_ref(node, root)
    kind = node.get("type")
    if kind is not None:
        return kind == "object" or (isinstance(kind, list) and "object" in kind)
    if "enum" in node or "const" in node:
        return any(isinstance(v, dict) for v in node.get("enum", [node.get("const")]))
    union = node.get("anyOf") or node.get("oneOf")
    if isinstance(union, list):
        return any(isinstance(v, Mapping) and _may_be_object(v, root, depth + 1) for v in union)
    return True


def resolve_local_ref(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a chain of `#/...` references from `node`; sibling keywords override the target's."""
    seen: set[str] = set()
    while isinstance(node.get("$ref"), str) and node["$ref"].startswith("#") and node["$ref"] not in seen:
        ref = node["$ref"]
        seen.add(ref)
        target = json_pointer(root, ref[1:])
        if not isinstance(target, Mapping):
            break
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def json_pointer(document: Any, pointer: str) -> Any:
    """Resolve an RFC 6901 pointer (`/$defs/Address`); None when it leads nowhere."""
    node = document
    for raw in pointer.split("/")[1:] if pointer else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _broken_local_refs(schema: Mapping[str, Any]) -> Iterator[str]:
    # With an embedded `$id` a `#...` ref is relative to that sub-resource; leave those to jsonschema.
    if any(node is not schema and "$id" in node for node in _subschemas(schema)):
        return
    for node in _subschemas(schema):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#") and json_pointer(schema, ref[1:]) is None:
            yield ref


def _subschemas(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _subschemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _subschemas(value)


# --- validation ---------------------------------------------------------------------------------


def instance_validator(schema: Mapping[str, Any]) -> Validator:
    """A validator for `schema` whose regexes run on RE2 and whose `$ref`s never leave the schema."""
    cls = validator_class(validators.validator_for(schema, default=Draft202012Validator))
    return cls(schema, format_checker=cls.FORMAT_CHECKER, registry=jsonschema_specifications.REGISTRY)


@lru_cache(maxsize=512)
def _compiled(schema_json: str) -> Validator:
    return instance_validator(json.loads(schema_json))


def validate_instance(instance: Any, schema: Mapping[str, Any], *, schema_field: str = "output_schema") -> list[str]:
    """Readable errors (`$.path: reason`), sorted by path; empty when `instance` matches.

    Format checking is on (date-time, email, uri, uuid...). A `$ref` that cannot be resolved is a
    fault of the schema, not of the instance, so it raises BadRequest(field_name=schema_field) rather
    than becoming an error the model would be asked (in vain) to fix.
    """
    validator = _compiled(canonical_json(schema))
    try:
        errors = sorted(validator.iter_errors(instance), key=_path_order)
    except Unresolvable as err:
        raise BadRequest(f"schema reference cannot be resolved: {err}", field_name=schema_field) from err
    except UnsupportedPattern as err:  # a schema that skipped check_schema (stored before RE2, a batch)
        raise BadRequest(str(err), field_name=schema_field) from err
    return [_describe(err) for err in errors]


def _path_order(err: exceptions.ValidationError) -> list[tuple[int, int | str]]:
    # array indexes in numeric order (items[2] before items[10]), keys alphabetically
    return [(0, p) if isinstance(p, int) else (1, str(p)) for p in err.absolute_path]


def _describe(err: exceptions.ValidationError) -> str:
    if err.validator == "pattern":  # jsonschema shows the repr, doubling every backslash of the regex
        reason = f"{_short(repr(err.instance))} does not match the regular expression `{err.validator_value}`"
    else:
        reason = _short(err.message)
    text = f"{_json_path(err.absolute_path)}: {reason}"
    if err.context:  # anyOf / oneOf: name the failure of the branch that got furthest
        closest = err
        while closest.context:
            closest = max(closest.context, key=lambda e: len(e.absolute_path))
        text += f" (closest: {_describe(closest)})"
    return text


def _json_path(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE_CHARS else message[: _MAX_MESSAGE_CHARS - 3] + "..."


# --- reading answers ----------------------------------------------------------------------------


def parse_json_answer(text: str) -> Any:
    """The JSON value in a model's answer: bare, inside a ``` fence, or an object/array amid prose.

    In prose only the first `{` and the first `[` are tried (not every bracket: scanning on past a
    broken object would pick one of its inner objects). Raises StructuredOutputError naming the JSON
    error of the outermost candidate.
    """
    stripped = text.strip()
    if not stripped:
        raise StructuredOutputError("the answer is empty", errors=["$: the answer is empty"], raw_output=text)
    candidate = stripped
    fence = _FENCE.search(stripped)
    if fence:
        candidate = fence.group(2).strip()
    try:
        return loads(candidate)
    except UnstorableValue as err:  # NaN, a NUL...: ask again rather than fail storing the result
        raise _unstorable(err, text) from None
    except ValueError as err:
        error = err
    if not fence:
        starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
        for start in sorted(starts):
            try:
                value, _ = json.JSONDecoder().raw_decode(stripped, start)
            except ValueError as err:
                error = err if start == min(starts) else error
                continue
            if isinstance(value, dict | list):
                try:
                    check(value)
                except UnstorableValue as err:
                    raise _unstorable(err, text) from None
                return value
    reason = f"the answer is not valid JSON: {error}"
    raise StructuredOutputError(reason, errors=[f"$: {reason}"], raw_output=text)


def _unstorable(err: UnstorableValue, text: str) -> StructuredOutputError:
    where = f"$.{err.path}" if err.path and not err.path.startswith("[") else f"${err.path}"
    return StructuredOutputError(
        f"the answer is not storable JSON: {err.reason}", errors=[f"{where}: {err.reason}"], raw_output=text
    )
