"""The token API, under the deployment's base path, and its OpenAPI description.

    GET  /tokens/<token>               describe the wait (any status)
    POST /tokens/<token>/success       {"event": {...}}       complete it
    POST /tokens/<token>/failure       {"error", "cause"}     fail it
    POST /tokens/<token>/heartbeat                            push its heartbeat deadline
    GET  /handlers/<handler_id>/waits                         the handler's open waits

Errors are ``{"detail", "code"}``: 400 ``InvalidToken`` / ``InvalidEvent`` /
``InvalidRequest``, 404 ``TaskDoesNotExist``, 409 ``TaskAlreadyCompleted``, 410
``TaskTimedOut``, 500 ``DeliveryFailed``. The ``/tokens/`` routes are authenticated by
the token itself (like a pre-signed URL); ``…/waits`` is a handler route like the
others (:data:`TOKEN_ROUTE_PREFIX` tells them apart).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from llama_agents.server import HandlerQuery
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import LlamawsError
from .tokens import WaitTokenError

if TYPE_CHECKING:
    from .service import WaitTokens

__all__ = ["TOKEN_ROUTE_PREFIX", "openapi_paths", "wait_routes"]

TOKEN_ROUTE_PREFIX = "/tokens/"
"""Under the base path: the routes a token authenticates (no deployment auth)."""
MAX_BODY_BYTES = 1024 * 1024


class InvalidRequest(WaitTokenError):
    status_code = 400
    code = "InvalidRequest"


def wait_routes(waits: WaitTokens, base: str) -> list[Route]:
    """The token API's routes for the deployment at ``base``."""

    async def describe(request: Request) -> Response:
        return await _answer(lambda: waits.describe(request.path_params["token"]))

    async def success(request: Request) -> Response:
        async def call() -> Any:
            body = await _json_body(request, required=True)
            return await waits.success(request.path_params["token"], body.get("event"))

        return await _answer(call)

    async def failure(request: Request) -> Response:
        async def call() -> Any:
            body = await _json_body(request, required=False)
            error, cause = body.get("error"), body.get("cause")
            for name, value in (("error", error), ("cause", cause)):
                if value is not None and not isinstance(value, str):
                    raise InvalidRequest(f"'{name}' must be a string")
            return await waits.failure(request.path_params["token"], error, cause)

        return await _answer(call)

    async def heartbeat(request: Request) -> Response:
        return await _answer(lambda: waits.heartbeat(request.path_params["token"]))

    async def list_waits(request: Request) -> Response:
        handler_id = request.path_params["handler_id"]
        found = await waits.workflow_store.query(HandlerQuery(handler_id_in=[handler_id]))
        if not found:
            return JSONResponse({"detail": "Handler not found"}, status_code=404)
        records = await waits.open_waits(handler_id)
        return JSONResponse({"waits": [r.wait() for r in records]})

    async def not_a_token_route(request: Request) -> Response:
        # A token with a '/' in it, or a method a token route does not take: answered
        # here (JSON), not by the workflow API's static files.
        rest = str(request.path_params["rest"])
        if not rest:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        head, _, action = rest.partition("/")
        if not action or (action in _ACTIONS and "/" not in head):
            return JSONResponse({"detail": "Method Not Allowed"}, status_code=405)
        return await _answer(lambda: waits.describe(rest))

    tokens = f"{base}{TOKEN_ROUTE_PREFIX}{{token}}"
    return [
        Route(tokens, describe, methods=["GET"]),
        Route(f"{tokens}/success", success, methods=["POST"]),
        Route(f"{tokens}/failure", failure, methods=["POST"]),
        Route(f"{tokens}/heartbeat", heartbeat, methods=["POST"]),
        Route(f"{base}{TOKEN_ROUTE_PREFIX}{{rest:path}}", not_a_token_route, methods=_METHODS),
        Route(f"{base}/handlers/{{handler_id}}/waits", list_waits, methods=["GET"]),
    ]


_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_ACTIONS = ("success", "failure", "heartbeat")


async def _answer(call: Any) -> Response:
    try:
        record = await call()
    except WaitTokenError as exc:
        return JSONResponse(exc.payload(), status_code=exc.status_code)
    except LlamawsError as exc:  # the store failed (e.g. DynamoDB after its retries): 503
        return JSONResponse(
            {"detail": str(exc), "code": type(exc).__name__}, status_code=exc.status_code
        )
    return JSONResponse(record.describe())


async def _json_body(request: Request, *, required: bool) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest(f"Request body over {MAX_BODY_BYTES} bytes")
    if not body.strip():
        if required:
            raise InvalidRequest('Request body required: {"event": {"type": ..., "value": ...}}')
        return {}
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid JSON body: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("The request body must be a JSON object")
    return parsed


# -- OpenAPI ---------------------------------------------------------------------------------

_ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "TaskDoesNotExist, InvalidToken, …"},
    },
    "required": ["detail"],
}
_WAIT_PROPERTIES: dict[str, Any] = {
    "token": {"type": "string"},
    "waiter_id": {"type": "string"},
    "expected_events": {"type": "array", "items": {"type": "string"}},
    "expires_at": {"type": "string", "format": "date-time", "nullable": True},
    "heartbeat_expires_at": {"type": "string", "format": "date-time", "nullable": True},
}
_DESCRIPTION = {
    "type": "object",
    "properties": {
        **_WAIT_PROPERTIES,
        "handler_id": {"type": "string"},
        "run_id": {"type": "string"},
        "workflow_name": {"type": "string"},
        "kind": {"type": "string", "enum": ["event", "input"]},
        "status": {
            "type": "string",
            "enum": ["open", "completed", "failed", "timed_out", "cancelled"],
        },
        "heartbeat_seconds": {"type": "number", "nullable": True},
        "created_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": "string", "format": "date-time", "nullable": True},
        "ended_by": {"type": "string", "nullable": True},
        "error": {"type": "string", "nullable": True},
        "cause": {"type": "string", "nullable": True},
    },
}
_TOKEN_PARAMETER = {
    "in": "path",
    "name": "token",
    "required": True,
    "schema": {"type": "string"},
    "description": "The wait token (announced by WaitTokenIssued, listed at …/waits).",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _token_errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "InvalidToken (malformed), InvalidEvent or InvalidRequest",
        404: "TaskDoesNotExist",
        409: "TaskAlreadyCompleted",
        410: "TaskTimedOut (deadline passed, or the run ended)",
        500: "DeliveryFailed",
    }
    return {str(s): _json(_ERROR, meaning[s]) for s in statuses}


def openapi_paths() -> dict[str, Any]:
    """OpenAPI path items of the token API (relative to the deployment's base path)."""
    described = _json(_DESCRIPTION, "The wait, after the call")
    security: dict[str, Any] = {"security": []}  # the token is the credential
    return {
        "/tokens/{token}": {
            "get": {
                "summary": "Describe a wait",
                "description": "The wait of a token: handler, expected events, deadlines, status.",
                "parameters": [_TOKEN_PARAMETER],
                "responses": {"200": described, **_token_errors(400, 404)},
                **security,
            }
        },
        "/tokens/{token}/success": {
            "post": {
                "summary": "Complete a wait with its event",
                "description": "Validates the event against the wait's expected types and "
                "delivers it like POST /events/{handler_id}; exactly one completion wins.",
                "parameters": [_TOKEN_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "event": {
                                        "type": "object",
                                        "properties": {
                                            "type": {"type": "string"},
                                            "value": {"type": "object"},
                                        },
                                    }
                                },
                                "required": ["event"],
                            }
                        }
                    },
                },
                "responses": {"200": described, **_token_errors(400, 404, 409, 410, 500)},
                **security,
            }
        },
        "/tokens/{token}/failure": {
            "post": {
                "summary": "Fail a wait",
                "description": "ctx.wait_for_event raises WaitFailedError(error, cause) in the "
                "step; an InputRequiredEvent wait gets a WaitFailed event (unhandled: the run "
                "fails naming the wait, the error and the cause).",
                "parameters": [_TOKEN_PARAMETER],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {"type": "string", "maxLength": 256},
                                    "cause": {"type": "string", "maxLength": 32768},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": described, **_token_errors(400, 404, 409, 410, 500)},
                **security,
            }
        },
        "/tokens/{token}/heartbeat": {
            "post": {
                "summary": "Keep a wait alive",
                "description": "Pushes the heartbeat deadline heartbeat_seconds ahead.",
                "parameters": [_TOKEN_PARAMETER],
                "responses": {"200": described, **_token_errors(400, 404, 409, 410)},
                **security,
            }
        },
        "/handlers/{handler_id}/waits": {
            "get": {
                "summary": "List a handler's open waits",
                "parameters": [
                    {
                        "in": "path",
                        "name": "handler_id",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "waits": {
                                    "type": "array",
                                    "items": {"type": "object", "properties": _WAIT_PROPERTIES},
                                }
                            },
                        },
                        "The open waits",
                    ),
                    "404": _json(_ERROR, "Handler not found"),
                },
            }
        },
    }
