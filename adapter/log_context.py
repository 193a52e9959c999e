"""Log records of a run carry its ids: ``handler_id`` and ``run_id``.

In Lambda the function's log format is JSON (the stack sets it): the runtime writes
each record as one JSON line with the record's extra attributes as fields, so every
line logged for a run has ``"handler_id"`` and ``"run_id"`` and ``llamaws logs
--handler ID`` can pick them out.

Where the ids come from, innermost first: the tags the workflow server and runtime
put on a run's context (``llamaindex.handler_id`` when the server starts a run,
``llamaindex.run_id`` for the run's control loop and steps; the run's tasks inherit
them), then what the Lambda container knows of the invocation (:func:`bound`: the
handler a ``continue`` event drives, or the one an HTTP path names). :func:`install`
wraps the logging record factory once per process; records without a run get neither
field.

Under the managed runtime (``awslambdaric``) the runtime's own JSON formatter writes the
lines; llamaws's streaming runtime loop writes them with :class:`JsonLineFormatter`, in
the same shape, when the function's log format is JSON (``AWS_LAMBDA_LOG_FORMAT``).
"""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

__all__ = [
    "JsonLineFormatter",
    "bind",
    "bound",
    "current_ids",
    "handler_id_of_event",
    "install",
    "set_request_id",
    "unbind",
]

Ids = tuple[str | None, str | None]
_ids: ContextVar[Ids] = ContextVar("llamaws_log_ids", default=(None, None))
_tags: ContextVar[dict[str, Any]] | None = None
_installed = False
_request_id: str | None = None
_HANDLER_PATH = re.compile(r"/(?:handlers|events|results)/([^/?#]+)")


def bind(handler_id: str | None = None, run_id: str | None = None) -> Token[Ids]:
    """From now on (and in tasks started from here) records carry these ids; undo with
    :func:`unbind`."""
    return _ids.set((handler_id, run_id))


def unbind(token: Token[Ids]) -> None:
    """Back to the ids before :func:`bind`."""
    _ids.reset(token)


@contextmanager
def bound(handler_id: str | None = None, run_id: str | None = None) -> Iterator[None]:
    """Records logged inside (and in tasks started inside) carry these ids."""
    token = bind(handler_id, run_id)
    try:
        yield
    finally:
        unbind(token)


def set_request_id(request_id: str | None) -> None:
    """The invocation being served (a runtime loop serves one at a time): its records
    carry it as ``aws_request_id``, as under the managed runtime."""
    global _request_id
    _request_id = request_id


def current_ids() -> tuple[str | None, str | None]:
    """``(handler_id, run_id)`` of the current context (``None`` where unknown)."""
    handler_id, run_id = _ids.get()
    if _tags is not None:
        tags = _tags.get()
        if tags:
            handler_id = tags.get("llamaindex.handler_id") or handler_id
            run_id = tags.get("llamaindex.run_id") or run_id
    return handler_id, run_id


def handler_id_of_event(event: Mapping[str, Any]) -> str | None:
    """The handler an invocation is about: a ``continue`` event's, or the one in an HTTP
    path (``…/handlers/<id>``, ``…/events/<id>``, ``…/results/<id>``)."""
    internal = event.get("llamaws")
    if isinstance(internal, Mapping):
        value = internal.get("handler_id")
        return value if isinstance(value, str) and value else None
    path = event.get("rawPath") or event.get("path")
    if isinstance(path, str):
        match = _HANDLER_PATH.search(path)
        if match:
            return match[1]
    return None


def install() -> None:
    """Give every log record of this process the current ids (once; idempotent)."""
    global _installed, _tags
    if _installed:
        return
    try:
        from llama_index_instrumentation.dispatcher import active_instrument_tags

        _tags = active_instrument_tags
    except ImportError:  # the server always brings it; without it, our ids only
        _tags = None
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        handler_id, run_id = current_ids()
        if handler_id is not None:
            record.handler_id = handler_id
        if run_id is not None:
            record.run_id = run_id
        if _request_id is not None and not hasattr(record, "aws_request_id"):
            record.aws_request_id = _request_id
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


_STANDARD = frozenset(
    (*logging.makeLogRecord({}).__dict__, "message", "asctime", "aws_request_id", "taskName")
)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record, shaped like Lambda's JSON log format: ``timestamp``,
    ``level``, ``message``, ``logger``, ``requestId``, the record's extra fields
    (``handler_id``, ``run_id``, …) and, with an exception, ``errorType``,
    ``errorMessage`` and ``stackTrace``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "requestId": getattr(record, "aws_request_id", None),
        }
        line.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info and record.exc_info[0] is not None:
            kind, error, trace = record.exc_info
            line["errorType"] = kind.__name__
            line["errorMessage"] = str(error)
            line["stackTrace"] = traceback.format_tb(trace)
        return json.dumps({k: v for k, v in line.items() if v is not None}, default=str)
