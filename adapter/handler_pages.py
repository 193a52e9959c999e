"""Paged handler listings: ``GET /handlers?limit=&page_token=`` → ``next_page_token``.

The reference server returns every matching handler in one response; at a few
hundred bytes each, a deployment with ~20k handlers would exceed Lambda's 6 MB
response limit. llamaws answers one page at a time:

- **Order** (stable, the same on every store): status (running, completed, failed,
  cancelled), then ``<workflow_name>#<handler_id>`` as a string — the order of the
  DynamoDB handler index (``GSI1``), so a page is one Query from a key.
- **Keyset paging.** A page token names the last handler returned (its status,
  workflow and id) and a fingerprint of the filters; the next page starts right
  after it (DynamoDB: ``ExclusiveStartKey``; SQLite: a ``WHERE`` on the same order).
  Handlers created or finished meanwhile never shift a page.
- **Bounds.** ``limit`` defaults to :data:`DEFAULT_LIMIT` (what old clients, which
  send neither parameter, get) and is at most :data:`MAX_LIMIT`; a page also stops
  before its JSON passes :data:`PAGE_BYTES`, so no response nears Lambda's limit.

A store with a ``handler_page`` method pages itself (:class:`DynamoWorkflowStore`);
the reference SQLite store pages through :func:`upstream.sqlite_handler_page`; any
other store (the in-memory one) is listed whole and sliced.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from llama_agents.server import AbstractWorkflowStore, HandlerQuery, PersistentHandler
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from starlette.routing import Route

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "PAGE_BYTES",
    "STATUS_ORDER",
    "HandlerFilter",
    "PageError",
    "Position",
    "decode_token",
    "encode_token",
    "fetch_page",
    "handlers_route",
    "list_page",
    "order_key",
    "parse_limit",
]

DEFAULT_LIMIT = 100
"""Handlers per page when the request names no ``limit`` (old clients)."""
MAX_LIMIT = 1000
PAGE_BYTES = 5_000_000
"""A page's handlers stop before their JSON passes this (Lambda answers at most 6 MB)."""
STATUS_ORDER = ("running", "completed", "failed", "cancelled")
_TOKEN_VERSION = 1


class PageError(ValueError):
    """A ``limit`` or ``page_token`` the listing cannot use (a 400)."""


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last handler it returned."""

    status: str
    workflow_name: str
    handler_id: str

    @classmethod
    def of(cls, handler: PersistentHandler) -> Position:
        return cls(handler.status, handler.workflow_name, handler.handler_id)


@dataclass(frozen=True)
class HandlerFilter:
    """The filters of a listing (``None``: any), normalised: statuses in listing order."""

    statuses: tuple[str, ...] | None = None
    workflow_names: tuple[str, ...] | None = None

    @classmethod
    def of(cls, statuses: Sequence[str] | None, names: Sequence[str] | None) -> HandlerFilter:
        return cls(
            tuple(s for s in STATUS_ORDER if s in statuses) if statuses is not None else None,
            tuple(sorted(set(names))) if names is not None else None,
        )

    def fingerprint(self) -> str:
        text = json.dumps([self.statuses, self.workflow_names])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def query(self) -> HandlerQuery:
        return HandlerQuery(
            status_in=list(self.statuses) if self.statuses is not None else None,  # type: ignore[arg-type]
            workflow_name_in=list(self.workflow_names) if self.workflow_names is not None else None,
        )


def order_key(status: str, workflow_name: str, handler_id: str) -> tuple[int, str]:
    """The listing order: status, then the handler index's sort key."""
    rank = STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)
    return rank, f"{workflow_name}#{handler_id}"


def parse_limit(raw: str | None) -> int:
    """``limit`` as given (``None``: the default); 1 … :data:`MAX_LIMIT`."""
    if raw is None or raw.strip() == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise PageError(
            f"Invalid limit {raw!r}: give a whole number from 1 to {MAX_LIMIT}."
        ) from None
    if not 1 <= value <= MAX_LIMIT:
        raise PageError(f"Invalid limit {value}: give a whole number from 1 to {MAX_LIMIT}.")
    return value


def encode_token(after: Position, filters: HandlerFilter) -> str:
    """An opaque token: the next page starts after ``after``, for these filters only."""
    data = {
        "v": _TOKEN_VERSION,
        "a": [after.status, after.workflow_name, after.handler_id],
        "f": filters.fingerprint(),
    }
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def decode_token(token: str, filters: HandlerFilter) -> Position:
    """The position a token names; :class:`PageError` when it is not one of ours or
    was issued for other filters."""
    bad = PageError("Invalid page_token: pass the next_page_token of the previous page, unchanged.")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data: Any = json.loads(raw)
        status, workflow_name, handler_id = data["a"]
        version, fingerprint = data["v"], data["f"]
    except (ValueError, TypeError, KeyError):
        raise bad from None
    if version != _TOKEN_VERSION or not all(
        isinstance(v, str) for v in (status, workflow_name, handler_id, fingerprint)
    ):
        raise bad
    if status not in STATUS_ORDER:
        raise bad
    if fingerprint != filters.fingerprint():
        raise PageError(
            "Invalid page_token: it belongs to a listing with other filters; send the "
            "same status and workflow_name as the first page."
        )
    return Position(status, workflow_name, handler_id)


@runtime_checkable
class PagedStore(Protocol):
    """A store that answers one page of the listing itself."""

    async def handler_page(
        self, filters: HandlerFilter, after: Position | None, limit: int
    ) -> list[PersistentHandler]: ...


async def fetch_page(
    store: AbstractWorkflowStore, filters: HandlerFilter, after: Position | None, limit: int
) -> list[PersistentHandler]:
    """Up to ``limit`` handlers matching ``filters`` that come after ``after``, in order."""
    if isinstance(store, PagedStore):
        return await store.handler_page(filters, after, limit)
    from llama_agents.server import SqliteWorkflowStore

    from .upstream import sqlite_handler_page

    if isinstance(store, SqliteWorkflowStore):
        return await sqlite_handler_page(store, filters, after, limit)
    found = await store.query(filters.query())
    ordered = sorted(found, key=lambda h: order_key(h.status, h.workflow_name, h.handler_id))
    if after is not None:
        start = order_key(after.status, after.workflow_name, after.handler_id)
        ordered = [h for h in ordered if order_key(h.status, h.workflow_name, h.handler_id) > start]
    return ordered[:limit]


def handlers_route(store: AbstractWorkflowStore, base_path: str) -> Route:
    """``GET <base>/handlers``: the reference listing, paged (see the module doc)."""
    from starlette.routing import Route

    async def list_handlers(request: Request) -> Response:
        try:
            filters = HandlerFilter.of(
                _list_param(request, "status", validate=True),
                _list_param(request, "workflow_name"),
            )
            limit = parse_limit(request.query_params.get("limit"))
            token = request.query_params.get("page_token")
            after = decode_token(token, filters) if token else None
        except PageError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return JSONResponse(await list_page(store, filters, after, limit))

    return Route(f"{base_path}/handlers", list_handlers, methods=["GET"])


async def list_page(
    store: AbstractWorkflowStore, filters: HandlerFilter, after: Position | None, limit: int
) -> dict[str, Any]:
    """The JSON body of one page: ``handlers`` and, when more follow, ``next_page_token``."""
    from .upstream import handler_data_from_persistent

    found = await fetch_page(store, filters, after, limit + 1)
    handlers: list[dict[str, Any]] = []
    size = 0
    for handler in found[:limit]:
        data = handler_data_from_persistent(handler).model_dump(mode="json")
        size += len(json.dumps(data)) + 1
        if handlers and size > PAGE_BYTES:
            break
        handlers.append(data)
    body: dict[str, Any] = {"handlers": handlers}
    if len(handlers) < len(found):
        body["next_page_token"] = encode_token(Position.of(found[len(handlers) - 1]), filters)
    return body


def _list_param(request: Request, name: str, *, validate: bool = False) -> list[str] | None:
    """A repeated query parameter as the reference server reads it (blank: absent)."""
    values = [v.strip() for v in request.query_params.getlist(name) if v.strip()]
    if validate:
        unknown = [v for v in values if v not in STATUS_ORDER]
        if unknown:
            raise PageError(
                f"Invalid status {unknown[0]!r}: each status must be one of "
                f"{', '.join(STATUS_ORDER)}."
            )
    return values or None
