"""Requests the workflow API cannot take are refused with a 4xx before they reach it.

``llama-agents-server`` 0.8.0 answers some malformed requests with a 500 (an array
body to ``/events/<id>``, a list ``handler_id``, an ``after_sequence`` beyond 64
bits), accepts others silently (``GET /handlers?status=<garbage>`` lists nothing),
and takes bodies of any size, which Lambda refuses. :class:`InputGuard` sits in
front of the server's routes and checks what they would trip on:

- bodies over ``max_body_bytes`` (Lambda's 6 MB request limit by default) → 413;
- ``POST /workflows/<w>/run[-nowait]``: a JSON object, a valid ``handler_id`` → 400;
- ``POST /events/<id>``: a JSON object with an ``event`` (object or string) and an
  optional string ``step`` → 400;
- ``GET /events/<id>``: ``after_sequence`` ``now`` or -1 … 2**63-1 (``Last-Event-ID``
  too) → 400;
- ``GET /handlers``: each ``status`` one of the four → 400;
- a handler id in a path that no handler can have → 404 ``Handler not found``.

Everything else passes through untouched (bad JSON keeps the server's own 400).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .handler_ids import HANDLER_ID_PATTERN, handler_id_problem

__all__ = ["MAX_REQUEST_BYTES", "STATUSES", "InputGuard", "too_large_message"]

MAX_REQUEST_BYTES = 6 * 1024 * 1024
"""Lambda's request payload limit for synchronous invocations (6,291,456 bytes)."""
STATUSES = ("running", "completed", "failed", "cancelled")
MAX_SEQUENCE = 2**63 - 1

_RUN = re.compile(r"^/workflows/[^/]+/run(-nowait)?$")
_EVENTS = re.compile(r"^/events/(?P<id>[^/]+)$")
_HANDLER = re.compile(r"^/(handlers|results)/(?P<id>[^/]+)(/cancel)?$")


def too_large_message(size: int, limit: int = MAX_REQUEST_BYTES, hint: str | None = None) -> str:
    """The 413 detail: what was refused and why."""
    message = (
        f"Request body of {size} bytes exceeds the {limit}-byte request limit of AWS Lambda "
        "(the deployed app refuses it too); send large inputs by reference (e.g. an S3 key)."
    )
    return f"{message} {hint}" if hint else message


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class InputGuard:
    """ASGI middleware in front of the workflow API (see module doc).

    ``max_body_bytes=None`` lifts the size limit; ``too_large_hint`` is appended to
    the 413 message (e.g. how to lift the limit locally).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int | None = MAX_REQUEST_BYTES,
        too_large_hint: str | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.too_large_hint = too_large_hint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        method = scope["method"]
        try:
            self._check_path(method, path, scope)
            if method in ("POST", "PUT", "PATCH"):
                body = await self._read_body(scope, receive)
                self._check_body(path, body)
                receive = _replay(body, receive)
        except _Refused as refused:
            await _answer(send, refused.status, refused.detail)
            return
        await self.app(scope, receive, send)

    # -- checks ----------------------------------------------------------------------

    def _check_path(self, method: str, path: str, scope: Scope) -> None:
        found = _EVENTS.match(path) or _HANDLER.match(path)
        if found and not HANDLER_ID_PATTERN.fullmatch(found["id"]):
            raise _Refused(404, "Handler not found")
        if method != "GET":
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if _EVENTS.match(path):
            for value in query.get("after_sequence", [])[-1:]:
                if value.lower() != "now":
                    _sequence(value, "after_sequence")
            last_event_id = _header(scope, b"last-event-id")
            if last_event_id is not None and _is_int(last_event_id):
                _sequence(last_event_id, "Last-Event-ID")
        elif path == "/handlers":
            unknown = [
                v for v in query.get("status", []) if v.strip() and v.strip() not in STATUSES
            ]
            if unknown:
                raise _Refused(
                    400,
                    f"Invalid status {unknown[0]!r}: each status must be one of "
                    f"{', '.join(STATUSES)}.",
                )

    def _check_body(self, path: str, body: bytes) -> None:
        if _RUN.match(path):
            parsed = _json(body)
            if parsed is _NOT_JSON or (not body.strip() and parsed is None):
                return  # the server answers bad JSON itself; no body is a run without input
            if not isinstance(parsed, dict):
                raise _Refused(400, "The request body must be a JSON object.")
            handler_id = parsed.get("handler_id")
            if handler_id is not None:
                problem = handler_id_problem(handler_id)
                if problem is not None:
                    raise _Refused(400, f"Invalid handler_id: {problem}.")
        elif _EVENTS.match(path):
            parsed = _json(body)
            if parsed is _NOT_JSON:
                return
            if not isinstance(parsed, dict):
                raise _Refused(
                    400,
                    'The request body must be a JSON object: {"event": {"type": ..., '
                    '"value": {...}}}.',
                )
            event = parsed.get("event")
            if not isinstance(event, dict | str) or not event:
                raise _Refused(
                    400,
                    "'event' is required: an object "
                    '{"type": "<EventClass>", "value": {...}} (or that object as a JSON string).',
                )
            step = parsed.get("step")
            if step is not None and not isinstance(step, str):
                raise _Refused(400, "'step' must be a string (a step name).")

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if (
            limit is not None
            and declared is not None
            and _is_int(declared)
            and int(declared) > limit
        ):
            raise _Refused(413, too_large_message(int(declared), limit, self.too_large_hint))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if limit is not None and size > limit:
                raise _Refused(413, too_large_message(size, limit, self.too_large_hint))
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)


# -- helpers -----------------------------------------------------------------------------

_NOT_JSON = object()


def _json(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _sequence(value: str, name: str) -> int:
    if _is_int(value) and -1 <= int(value) <= MAX_SEQUENCE:
        return int(value)
    raise _Refused(
        400, f"Invalid {name}: {value[:40]!r}; use 'now' or an integer from -1 to {MAX_SEQUENCE}."
    )


def _is_int(value: str) -> bool:
    return bool(re.fullmatch(r"\s*[-+]?\d+\s*", value))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps the full path in ``path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, then what the connection says (e.g. a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
