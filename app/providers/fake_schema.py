"""Values for the fake provider: deterministic, readable, and valid against a JSON Schema
(or, on request, valid JSON that is not)."""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import rstr
from jsonschema.validators import validator_for

MAX_DEPTH = 6  # below this, optional properties are skipped and arrays shrink, so recursion ends
_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def generate_value(schema: Mapping[str, Any] | bool, seed: int) -> Any:
    """A value valid against `schema`, the same for the same seed."""
    root = schema if isinstance(schema, Mapping) else {}
    return _Generator(root, random.Random(seed)).value(schema, "output", 0)


def violate(schema: Mapping[str, Any], value: Any) -> Any:
    """Valid JSON that fails `schema`: a required field dropped, a wrong type, or a wrong top-level type.
    Objects come first so a forced tool call can still carry the bad answer as its input."""
    validator = validator_for(schema)(schema)
    candidates: list[Any] = []
    if isinstance(value, dict):
        required = [key for key in schema.get("required", ()) if key in value]
        if required:
            candidates.append({k: v for k, v in value.items() if k != required[0]})
        for key, item in value.items():
            candidates.append({**value, key: 12345 if isinstance(item, str) else "not a valid value"})
    candidates += [12345, "not a valid value", {}, [], None]
    return next((c for c in candidates if not validator.is_valid(c)), value)


def _slug(name: str, sep: str) -> str:
    return re.sub(r"[^a-z0-9]+", sep, name.lower()).strip(sep) or "simulated"


def _moment(rng: random.Random) -> dt.datetime:
    return _EPOCH + dt.timedelta(seconds=rng.randrange(366 * 86400))


_FORMATS: dict[str, Callable[[random.Random, str], str]] = {
    "date-time": lambda rng, name: _moment(rng).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "date": lambda rng, name: _moment(rng).strftime("%Y-%m-%d"),
    "time": lambda rng, name: _moment(rng).strftime("%H:%M:%SZ"),
    "duration": lambda rng, name: f"PT{rng.randint(1, 59)}M",
    "email": lambda rng, name: f"simulated.{_slug(name, '.')}@example.com",
    "idn-email": lambda rng, name: f"simulated.{_slug(name, '.')}@example.com",
    "uri": lambda rng, name: f"https://example.com/simulated/{_slug(name, '-')}",
    "iri": lambda rng, name: f"https://example.com/simulated/{_slug(name, '-')}",
    "uri-reference": lambda rng, name: f"/simulated/{_slug(name, '-')}",
    "uuid": lambda rng, name: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "hostname": lambda rng, name: f"{_slug(name, '-')}.example.com",
    "ipv4": lambda rng, name: f"192.0.2.{rng.randint(1, 254)}",
    "ipv6": lambda rng, name: f"2001:db8::{rng.randint(1, 0xFFFF):x}",
}


class _Generator:
    def __init__(self, root: Mapping[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.xeger = rstr.Rstr(rng, whitespace=" ")  # `\s` becomes a plain space: readable and still valid

    def value(self, schema: Any, name: str, depth: int) -> Any:
        schema = self.resolve(schema)
        name = str(schema.get("title") or name)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                branches = [self.resolve(b) for b in schema[key]]
                branch = next((b for b in branches if b.get("type") != "null"), branches[0])
                outer = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                return self.value({**outer, **branch}, name, depth)
        kind = self.kind(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind in ("integer", "number"):
            return self.number(schema, integer=kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema, name)

    def resolve(self, schema: Any) -> dict[str, Any]:
        """Follow a local `$ref` (keeping sibling keywords) and fold `allOf` into one schema."""
        if not isinstance(schema, Mapping):
            return {}  # `true` / `false`: anything goes
        schema = dict(schema)
        for _ in range(32):  # a chain of refs, not an infinite one
            ref = schema.pop("$ref", None)
            if not isinstance(ref, str) or not ref.startswith("#"):
                break
            target: Any = self.root
            for part in filter(None, ref[1:].split("/")):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target[int(part)] if isinstance(target, list) else target.get(part, {})
            schema = {**target, **schema}
        for part in schema.pop("allOf", ()):
            part = self.resolve(part)
            merged_props = {**schema.get("properties", {}), **part.get("properties", {})}
            required = [*schema.get("required", ()), *part.get("required", ())]
            schema = {**schema, **part, "properties": merged_props, "required": list(dict.fromkeys(required))}
        return schema

    def kind(self, schema: Mapping[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            declared = next((t for t in declared if t != "null"), declared[0] if declared else None)
        if isinstance(declared, str):
            return declared
        if any(k in schema for k in ("properties", "required", "additionalProperties")):
            return "object"
        if any(k in schema for k in ("items", "prefixItems")):
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "multipleOf")):
            return "number"
        return "string"

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        required = list(schema.get("required", ()))
        out: dict[str, Any] = {}
        for key, sub in (schema.get("properties") or {}).items():
            if depth < MAX_DEPTH or key in required:
                out[key] = self.value(sub, key, depth + 1)
        extra = schema.get("additionalProperties")
        extra_schema = extra if isinstance(extra, Mapping) else {}
        for key in required:
            if key not in out:
                out[key] = self.value(extra_schema, key, depth + 1)
        for i in range(len(out), schema.get("minProperties", 0)):
            out[f"extra_{i + 1}"] = self.value(extra_schema, f"extra {i + 1}", depth + 1)
        return out

    def array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        items = schema.get("items")
        prefix = schema.get("prefixItems") or (items if isinstance(items, list) else [])
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        count = low if depth >= MAX_DEPTH else max(low, min(2, high if high is not None else 2))

        def item(i: int) -> Any:
            sub = prefix[i] if i < len(prefix) else items if isinstance(items, Mapping) else {}
            return self.value(sub, f"{name} {i + 1}", depth + 1)

        out = [item(i) for i in range(count)]
        if schema.get("uniqueItems"):
            for i in range(count):
                for _ in range(8):  # enums and booleans can repeat: redraw a few times
                    if out[i] not in out[:i]:
                        break
                    out[i] = item(i)
            unique = [v for i, v in enumerate(out) if v not in out[:i]]
            out = unique if len(unique) >= low else out
        return out

    def number(self, schema: Mapping[str, Any], *, integer: bool) -> int | float:
        low, high = schema.get("minimum"), schema.get("maximum")
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        step = 1 if integer else 0.01
        if isinstance(ex_low, bool):  # draft 4 spelling: a flag on minimum
            ex_low = low if ex_low else None
        if isinstance(ex_high, bool):
            ex_high = high if ex_high else None
        if ex_low is not None:
            low = max(low, ex_low + step) if low is not None else ex_low + step
        if ex_high is not None:
            high = min(high, ex_high - step) if high is not None else ex_high - step
        low = low if low is not None else (high - 100 if high is not None else 0)
        high = high if high is not None else low + 100
        multiple = schema.get("multipleOf")
        if multiple:
            first = math.ceil(low / multiple)
            value = self.rng.randint(first, max(first, math.floor(high / multiple))) * multiple
            return int(value) if integer or float(value).is_integer() else value
        if integer:
            return self.rng.randint(math.ceil(low), max(math.ceil(low), math.floor(high)))
        return min(high, max(low, round(self.rng.uniform(low, high), 2)))

    def string(self, schema: Mapping[str, Any], name: str) -> str:
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            for _ in range(20):
                try:
                    candidate = self.xeger.xeger(pattern)
                except Exception:  # rstr cannot build every construct (lookbehind...): fall back
                    break
                if re.search(pattern, candidate) and low <= len(candidate) <= (high or math.inf):
                    return candidate
        make = _FORMATS.get(str(schema.get("format")))
        text = make(self.rng, name) if make else f"simulated {name}"
        while len(text) < low:
            text += " simulated"
        return text[:high] if high is not None else text
