"""The only place messages are built. Pure functions: they return new tuples and never mutate inputs.

A prompt is one system message (instructions, what the input holds, what the output must be,
examples) and one user message carrying the input. JSON is rendered with the caller's key order:
the order of output fields carries meaning (a `thoughts` field before `answer` makes the model
reason first), and the same value always renders to the same text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.engine.structured import resolve_local_ref
from app.engine.task import Example, TaskSpec
from app.providers.base import Message

_MAX_DEPTH = 12  # deeper schemas are described down to here; the full schema still reaches the model
NO_INPUT = "(No input was given: follow the instructions.)"


@dataclass(frozen=True)
class FieldDescription:
    """One field of a schema, flattened: `customer.address.city`, `items[].sku`."""

    path: str
    type: str
    required: bool
    description: str | None = None
    rules: tuple[str, ...] = ()

    def render(self) -> str:
        head = f"- `{self.path}` ({self.type}{'' if self.required else ', optional'})"
        tail = " ".join(part for part in (self.description, *self.rules) if part)
        return f"{head}: {tail}" if tail else head


def build_messages(
    task: TaskSpec, *, extra_examples: Sequence[Example] = (), native_schema: bool
) -> tuple[Message, ...]:
    """System + user messages for `task`; `extra_examples` (few-shot from a dataset) follow the task's own."""
    sections = [task.instructions.strip()]
    sections.append(_input_section(task.input_schema))
    sections.append(_output_section(task.output_schema, native_schema))
    examples = (*task.examples, *extra_examples)
    if examples:
        sections.append(_examples_section(examples))
    system = "\n\n".join(section for section in sections if section)
    user = NO_INPUT if task.input is None else render_value(task.input)
    return (Message("system", system), Message("user", user))


def reask_messages(messages: Sequence[Message], bad_answer: str, errors: Sequence[str]) -> tuple[Message, ...]:
    """The conversation so far plus the rejected answer and why it was rejected, asking for a fix."""
    listed = "\n".join(f"- {error}" for error in errors) or "- the answer could not be used"
    correction = (
        "Your answer could not be accepted:\n"
        f"{listed}\n\n"
        "Answer again with only the corrected JSON, fixing every error listed above."
    )
    # Providers reject empty assistant turns, and an empty answer is a likely failure.
    return (*messages, Message("assistant", bad_answer or "(empty answer)"), Message("user", correction))


def render_value(value: Any) -> str:
    """Strings as they are; anything else as indented JSON."""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


# --- sections -----------------------------------------------------------------------------------


def _input_section(schema: Mapping[str, Any] | None) -> str:
    if not schema:
        return ""
    fields = describe_fields(schema)
    if not fields:
        return ""
    return "# Input\nThe input (in the user message) holds:\n" + "\n".join(f.render() for f in fields)


def _output_section(schema: Mapping[str, Any] | None, native: bool) -> str:
    if not schema:
        return "# Output\nAnswer in plain text."
    lines = ["# Output"]
    fields = describe_fields(schema)
    if fields:
        lines += ["The answer is JSON with these fields:", *(f.render() for f in fields)]
    if native:
        lines.append("Answer with a JSON object that matches the output schema.")
    else:
        lines += [
            "It must match this JSON Schema:",
            "```json\n" + json.dumps(schema, indent=2, ensure_ascii=False) + "\n```",
            "Answer with only a JSON value matching this schema: no prose and no code fence.",
        ]
    return "\n".join(lines)


def _examples_section(examples: Sequence[Example]) -> str:
    parts = ["# Examples"]
    for number, example in enumerate(examples, 1):
        title = f"## Example {number}" + (f": {example.comment}" if example.comment else "")
        parts.append(f"{title}\nInput:\n{_block(example.input)}\nOutput:\n{_block(example.output)}")
    return "\n\n".join(parts)


def _block(value: Any) -> str:
    return value if isinstance(value, str) else "```json\n" + render_value(value) + "\n```"


# --- schema flattening --------------------------------------------------------------------------


def describe_fields(schema: Mapping[str, Any]) -> list[FieldDescription]:
    """Every field of `schema` with its path, following local `$ref`s (`$defs`) and optional unions."""
    out: list[FieldDescription] = []
    _walk(schema, "", True, schema, {}, out, 0, emit=not _has_children(_merged(schema, schema), schema))
    return out


def _walk(
    node: Any,
    path: str,
    required: bool,
    root: Mapping[str, Any],
    seen: Mapping[str, str],
    out: list[FieldDescription],
    depth: int,
    *,
    emit: bool = True,
) -> None:
    """Append `node` (when `emit`) and then its properties and array items, depth first."""
    if not isinstance(node, Mapping) or depth > _MAX_DEPTH:
        return
    refs = _refs(node)
    enclosing = next((seen[ref] for ref in refs if ref in seen), None)
    if enclosing is not None:  # a recursive model (a tree node holding nodes): describe once, do not loop
        if emit:
            same = f"Same shape as `{enclosing}`." if enclosing else "Same shape as the whole value."
            out.append(FieldDescription(path, _type_name(node, root), required, same))
        return
    seen = {**seen, **dict.fromkeys(refs, path)}
    node = _merged(node, root)
    if emit:
        out.append(_field(node, path or "(the whole value)", required, root))
    for branch in _branches(node, root):
        needed = set(branch.get("required", ()))
        for name, child in (branch.get("properties") or {}).items():
            _walk(child, f"{path}.{name}" if path else name, name in needed, root, seen, out, depth + 1)
        items = branch.get("items")
        if isinstance(items, Mapping):  # the array's own line already says "array of ..."
            _walk(items, f"{path}[]", True, root, seen, out, depth + 1, emit=False)


def _refs(node: Mapping[str, Any]) -> frozenset[str]:
    """The `$ref`s that `node` stands for directly, through a union or a one-entry `allOf`."""
    candidates = [node, *(node.get("anyOf") or ()), *(node.get("oneOf") or ()), *(node.get("allOf") or ())]
    return frozenset(c["$ref"] for c in candidates if isinstance(c, Mapping) and isinstance(c.get("$ref"), str))


def _merged(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Resolve `$ref` and a single-entry `allOf` (pydantic's way of adding a description to a ref)."""
    node = resolve_local_ref(node, root)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
        rest = {k: v for k, v in node.items() if k != "allOf"}
        node = {**resolve_local_ref(all_of[0], root), **rest}
    return node


def _variants(node: Mapping[str, Any], root: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    union = node.get("anyOf") or node.get("oneOf")
    if not isinstance(union, list):
        return []
    return [_merged(v, root) for v in union if isinstance(v, Mapping)]


def _branches(node: Mapping[str, Any], root: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The node and its non-null union variants: where child properties can come from."""
    return [node, *(v for v in _variants(node, root) if v.get("type") != "null")]


def _has_children(node: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return any(b.get("properties") or isinstance(b.get("items"), Mapping) for b in _branches(node, root))


def _type_name(node: Mapping[str, Any], root: Mapping[str, Any], depth: int = 0) -> str:
    if depth > 4:  # a self-referencing array of arrays would otherwise never end
        return "any"
    node = _merged(node, root)
    variants = _variants(node, root)
    if variants:
        return " or ".join(dict.fromkeys(_type_name(v, root, depth + 1) for v in variants))
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array" and isinstance(node.get("items"), Mapping):
        return f"array of {_type_name(node['items'], root, depth + 1)}"
    if kind:
        return str(kind)
    if "enum" in node or "const" in node:
        return "value"
    return "object" if "properties" in node else "any"


def _field(node: Mapping[str, Any], path: str, required: bool, root: Mapping[str, Any]) -> FieldDescription:
    return FieldDescription(
        path=path,
        type=_type_name(node, root),
        required=required,
        description=_description(node, root),
        rules=tuple(_rules(node) + [r for v in _variants(node, root) for r in _rules(v)]),
    )


def _description(node: Mapping[str, Any], root: Mapping[str, Any]) -> str | None:
    text = node.get("description")
    if not text:  # Optional[Model] puts the description on the variant
        text = next((v.get("description") for v in _variants(node, root) if v.get("description")), None)
    if not text:
        return None
    text = str(text).strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _rules(node: Mapping[str, Any]) -> list[str]:
    """Constraints stated in words, so that even models without native structured output follow them."""
    rules = []
    if "pattern" in node:
        rules.append(f"Must match the regular expression `{node['pattern']}`.")
    if "enum" in node:
        rules.append("Must be one of: " + ", ".join(json.dumps(v, ensure_ascii=False) for v in node["enum"]) + ".")
    if "const" in node:
        rules.append(f"Must be exactly {json.dumps(node['const'], ensure_ascii=False)}.")
    if "format" in node:
        rules.append(f"Format: {node['format']}.")
    for key, words in _BOUNDS:
        if key in node:
            rules.append(f"{words} {node[key]}.")
    return rules


_BOUNDS = (
    ("minimum", "Minimum"),
    ("exclusiveMinimum", "Greater than"),
    ("maximum", "Maximum"),
    ("exclusiveMaximum", "Less than"),
    ("minLength", "Minimum length"),
    ("maxLength", "Maximum length"),
    ("minItems", "Minimum number of items"),
    ("maxItems", "Maximum number of items"),
)
