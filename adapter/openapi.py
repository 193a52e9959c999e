"""The ``openapi.json`` a deployment serves: the server's own schema, made valid and true.

``WorkflowServer.openapi_schema()`` (``llama-agents-server`` 0.8.0) declares OpenAPI
3.0.0 but uses ``{"type": "null"}`` (3.1 only), gives GET operations a request body
without content, and lists fewer statuses than the API answers. :func:`served_openapi`
keeps its paths and descriptions and

- rewrites nullable ``oneOf`` branches into OpenAPI 3.0's ``nullable`` (and a
  schema's ``examples`` into ``example``), marks
  the envelope fields the wire format sends as ``null`` nullable;
- drops request bodies of GET operations; status codes become strings;
- documents every status each operation really answers (400, 404, 409, 413 …) with
  the ``{"detail": ...}`` error shape, and the 500 a failed run's handler comes with;
- pins path and query parameters to what is accepted: served workflow names,
  the handler-id pattern, ``after_sequence`` bounds;
- documents the paging of ``GET /handlers`` (``limit``, ``page_token``,
  ``next_page_token``; see ``adapter/handler_pages.py``);
- points ``servers`` at the deployment's base path.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from .handler_ids import HANDLER_ID_PATTERN, MAX_HANDLER_ID_LENGTH
from .handler_pages import DEFAULT_LIMIT, MAX_LIMIT
from .input_guard import MAX_SEQUENCE

__all__ = ["served_openapi"]

_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_HANDLER_REF = {"$ref": "#/components/schemas/Handler"}

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ERROR_REF, description)


_TOO_LARGE = _error("Request body over the 6 MB request limit of AWS Lambda")
_BAD_HANDLER = _error("Handler not found")
_UNREADABLE = _error("Stored handler result cannot be decoded")
_NO_WORKFLOW = _error("Workflow not found")

_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "An SSE event: `id` is the event's sequence number, `data` its envelope "
    "{value, type, types, qualified_name} as JSON (a Lambda long-poll ends with `retry`).",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
_NDJSON_EVENT = {"$ref": "#/components/schemas/EventEnvelopeWithMetadata"}

RESPONSES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/workflows", "get"): {},
    ("/workflows/{name}/run", "post"): {
        "400": _error("Invalid request body, start_event or handler_id"),
        "404": _NO_WORKFLOW,
        "409": _error("A handler with this handler_id already exists"),
        "413": _TOO_LARGE,
        "500": {
            "description": "The run failed or was cancelled (the handler, with its error), or "
            "it could not be started",
            "content": {"application/json": {"schema": {"oneOf": [_HANDLER_REF, _ERROR_REF]}}},
        },
        "504": _error(
            "Lambda only: the run did not finish within the invocation's time budget; it "
            "continues (the body names handler_id)"
        ),
    },
    ("/workflows/{name}/run-nowait", "post"): {
        "400": _error("Invalid request body, start_event or handler_id"),
        "404": _NO_WORKFLOW,
        "409": _error("A handler with this handler_id already exists"),
        "413": _TOO_LARGE,
        "500": _error("The handler could not be stored"),
    },
    ("/workflows/{name}/schema", "get"): {"404": _NO_WORKFLOW},
    ("/workflows/{name}/representation", "get"): {"404": _NO_WORKFLOW},
    ("/workflows/{name}/events", "get"): {"404": _NO_WORKFLOW},
    ("/results/{handler_id}", "get"): {
        "200": _json({"type": "object"}, "The handler, its result unwrapped"),
        "202": _json({"type": "object"}, "The run is still running"),
        "404": _BAD_HANDLER,
        "422": _UNREADABLE,
        "500": _json({"type": "object"}, "The run failed or was cancelled"),
    },
    ("/events/{handler_id}", "get"): {
        "200": {
            "description": "The run's events (SSE by default, NDJSON with sse=false); the "
            "stream ends after the run's last event",
            "content": {
                "text/event-stream": {"schema": _SSE_EVENT},
                "application/x-ndjson": {"schema": _NDJSON_EVENT},
            },
        },
        "204": {"description": "The run is finished and every event was already read"},
        "400": _error("Invalid after_sequence or Last-Event-ID"),
        "404": _BAD_HANDLER,
        "422": _UNREADABLE,
    },
    ("/events/{handler_id}", "post"): {
        "400": _error(
            "Invalid body, unknown event type, or an event the run cannot take now (the "
            "message names the types it can)"
        ),
        "404": _BAD_HANDLER,
        "409": _error("The run is already finished"),
        "413": _TOO_LARGE,
        "500": _error("The run could not take the event (delivery failed)"),
    },
    ("/health", "get"): {
        "503": _json(
            {"type": "object", "properties": {"status": {"type": "string"}}},
            "The server is not started",
        )
    },
    ("/handlers", "get"): {"400": _error("Invalid status filter, limit or page_token")},
    ("/handlers/{handler_id}", "get"): {
        "200": _json(_HANDLER_REF, "The run completed"),
        "202": _json(_HANDLER_REF, "The run is still running"),
        "404": _BAD_HANDLER,
        "422": _UNREADABLE,
        "500": _json(_HANDLER_REF, "The run failed or was cancelled"),
    },
    ("/handlers/{handler_id}/cancel", "post"): {"404": _BAD_HANDLER},
}
"""Responses per (path, method), replacing the server's for the same statuses."""


def served_openapi(
    schema: dict[str, Any], *, base_path: str, workflow_names: Iterable[str]
) -> dict[str, Any]:
    """``schema`` (the server's) corrected as the module doc says; the input is not changed."""
    document: dict[str, Any] = _nullable(copy.deepcopy(schema))
    document["openapi"] = "3.0.3"
    document["servers"] = [{"url": base_path}]
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = _ERROR_SCHEMA
    envelope = components.get("EventEnvelopeWithMetadata", {}).get("properties", {})
    for field in ("types", "qualified_name"):  # null in the wire format (e.g. a result's types)
        if isinstance(envelope.get(field), dict):
            envelope[field]["nullable"] = True
    listing = components.get("HandlersList", {}).get("properties")
    if isinstance(listing, dict):
        listing["next_page_token"] = {
            "type": "string",
            "description": "Present when more handlers follow: pass it as page_token to get "
            "the next page (with the same status and workflow_name).",
        }
    names = sorted(workflow_names)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method == "get":
                operation.pop("requestBody", None)
            if (path, method) == ("/handlers", "get"):
                operation["parameters"] = [
                    p
                    for p in operation.get("parameters", [])
                    if p.get("name") not in ("limit", "page_token")
                ] + _PAGE_PARAMETERS
            for parameter in operation.get("parameters", []):
                _pin_parameter(parameter, names)
            body = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
            )
            handler_id = body.get("properties", {}).get("handler_id")
            if isinstance(handler_id, dict):
                handler_id.update(_handler_id_schema())
                handler_id["description"] = (
                    "An id for the new handler (default: a new 10-character id); an id that "
                    "exists is refused with 409."
                )
            responses = {str(code): value for code, value in operation.get("responses", {}).items()}
            responses.update(copy.deepcopy(RESPONSES.get((path, method), {})))
            operation["responses"] = dict(sorted(responses.items()))
    return document


_PAGE_PARAMETERS: list[dict[str, Any]] = [
    {
        "in": "query",
        "name": "limit",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        "description": f"Handlers per page (default {DEFAULT_LIMIT}; a page also ends before "
        "5 MB of JSON). Clients that send no limit get the first page.",
    },
    {
        "in": "query",
        "name": "page_token",
        "required": False,
        "schema": {"type": "string"},
        "description": "The next_page_token of the previous page, unchanged.",
    },
]


def _handler_id_schema() -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": f"^{HANDLER_ID_PATTERN.pattern}$",
        "minLength": 1,
        "maxLength": MAX_HANDLER_ID_LENGTH,
    }


def _pin_parameter(parameter: dict[str, Any], workflow_names: list[str]) -> None:
    where, name = parameter.get("in"), parameter.get("name")
    if where == "path" and name == "name" and workflow_names:
        parameter["schema"] = {"type": "string", "enum": workflow_names}
    elif where == "path" and name == "handler_id":
        parameter["schema"] = _handler_id_schema()
    elif where == "query" and name == "after_sequence":
        parameter["schema"] = {
            "oneOf": [
                {"type": "integer", "minimum": -1, "maximum": MAX_SEQUENCE},
                {"type": "string", "enum": ["now"]},
            ],
            "default": "now",
        }


def _nullable(node: Any) -> Any:  # returns the same kind of node it gets
    """Rewrite 3.1 schema keywords as 3.0 ones: ``oneOf/anyOf: [X, {"type": "null"}]``
    as ``nullable``, a schema's ``examples`` list as ``example``."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    examples = node.get("examples")
    if isinstance(examples, list) and "type" in node:  # a 3.1 schema keyword; 3.0 has one
        del node["examples"]
        if examples:
            node["example"] = examples[0]
    for keyword in ("oneOf", "anyOf"):
        branches = node.get(keyword)
        if not isinstance(branches, list):
            continue
        others = [b for b in branches if b != {"type": "null"}]
        if len(others) == len(branches):
            continue
        del node[keyword]
        node["nullable"] = True
        if len(others) == 1 and "$ref" not in others[0]:
            node.update(others[0])
        elif others:
            node["allOf" if len(others) == 1 else keyword] = others
    return node
