"""The OpenAPI document as the API behaves, where FastAPI's generator describes streaming routes wrongly.

For a route whose response class streams (`text/event-stream`, `application/x-ndjson`) FastAPI puts
every documented response under that media type, and writes the 200's item schema as `{"type":
"string", "$ref": ...}`. But errors leave before any streaming, as `application/json` (app/api/errors.py),
and a `$ref` beside `type: string` claims each item is a string and an object at once. The document is
corrected once, when first asked for: error responses move to `application/json`, and a `$ref`'s
sibling `type: string` goes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_JSON = "application/json"


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = corrected(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def corrected(document: dict[str, Any]) -> dict[str, Any]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                for media in content.values():
                    schema = media.get("schema", {})
                    if "$ref" in schema and schema.get("type") == "string":
                        del schema["type"]
                if status[:1] in "45" and content and _JSON not in content:
                    response["content"] = {_JSON: next(iter(content.values()))}
    return document
