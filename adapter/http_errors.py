"""How the workflow API renders errors: ``{"detail": ...}`` with the right status and headers.

The reference server's handlers drop an exception's headers (a 405 without
``Allow``) and give a 204 a JSON body, which HTTP servers refuse to send (h11 logs a
``Too much data for declared Content-Length`` traceback for every drained stream).
llamaws passes its own handlers to the ``WorkflowServer``: the same JSON shape,
headers kept, no body on 204 / 304, and llamaws's own errors (:class:`LlamawsError`)
rendered with their status and message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import LlamawsError

__all__ = ["BODYLESS_STATUSES", "error_response", "exception_handlers"]

logger = logging.getLogger("llamaws.http")

BODYLESS_STATUSES = frozenset((204, 304))
"""Statuses whose responses carry no body (RFC 9110)."""

Handler = Callable[[Request, Any], Awaitable[Response]]


def error_response(
    status_code: int, detail: object, headers: Mapping[str, str] | None = None
) -> Response:
    """``{"detail": detail}`` with ``status_code`` (an empty response for 204 / 304)."""
    if status_code in BODYLESS_STATUSES:
        return Response(status_code=status_code, headers=headers)
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


async def _http_exception(request: Request, exc: HTTPException) -> Response:
    return error_response(exc.status_code, exc.detail, exc.headers)


async def _llamaws_error(request: Request, exc: LlamawsError) -> Response:
    return error_response(exc.status_code, str(exc))


async def _unhandled(request: Request, exc: Exception) -> Response:
    logger.error("Unhandled exception on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": f"Internal server error: {exc}"}, status_code=500)


def exception_handlers() -> dict[Any, Handler]:
    """The handlers to give ``WorkflowServer(exception_handlers=...)``."""
    return {
        HTTPException: _http_exception,
        LlamawsError: _llamaws_error,
        Exception: _unhandled,
    }
