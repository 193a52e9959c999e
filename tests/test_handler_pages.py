"""Paged ``GET /handlers``: the same pages on SQLite, DynamoDB (moto server) and memory.

Each test pages through a seeded set and compares with the whole set in the
documented order; the HTTP tests go through the route with the official Python
client (an old client: it sends neither ``limit`` nor ``page_token``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.client import WorkflowClient
from llama_agents.server import (
    AbstractWorkflowStore,
    MemoryWorkflowStore,
    PersistentHandler,
    SqliteWorkflowStore,
)
from starlette.applications import Starlette
from workflows.events import StopEvent

from llamaws.adapter import handler_pages
from llamaws.adapter.handler_pages import (
    DEFAULT_LIMIT,
    HandlerFilter,
    PageError,
    Position,
    decode_token,
    handlers_route,
    list_page,
    order_key,
)
from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore

from .engines import MotoServer

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
WORKFLOWS = ("alpha", "beta", "alpha-2")
STATUSES = ("running", "completed", "failed", "cancelled")


@pytest.fixture(params=["sqlite", "dynamodb", "memory"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, dynamo_table_name: str
) -> AsyncIterator[AbstractWorkflowStore]:
    if request.param == "sqlite":
        yield SqliteWorkflowStore(str(tmp_path / "workflows.db"), poll_interval=0.05)
    elif request.param == "memory":
        yield MemoryWorkflowStore()
    else:
        moto: MotoServer = request.getfixturevalue("moto_server")
        dynamo = DynamoWorkflowStore(
            DynamoSettings(table_name=dynamo_table_name, endpoint_url=moto.endpoint)
        )
        await asyncio.to_thread(dynamo.create_resources)
        yield dynamo


async def seed(store: AbstractWorkflowStore, count: int, *, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + count):
        handler_id = f"h{(i * 7919) % 1000:03d}-{i}"
        status = STATUSES[i % len(STATUSES)]
        await store.update(
            PersistentHandler(
                handler_id=handler_id,
                workflow_name=WORKFLOWS[i % len(WORKFLOWS)],
                status=status,  # type: ignore[arg-type]
                run_id=f"r-{handler_id}",
                started_at=T0 + timedelta(seconds=i),
                result=StopEvent(result=i) if status == "completed" else None,
            )
        )
        ids.append(handler_id)
    return ids


async def all_pages(
    store: AbstractWorkflowStore,
    filters: HandlerFilter,
    limit: int,
    *,
    after: Position | None = None,
) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    for _ in range(1000):
        page = await list_page(store, filters, after, limit)
        assert len(page["handlers"]) <= limit
        listed.extend(page["handlers"])
        token = page.get("next_page_token")
        if token is None:
            return listed
        after = decode_token(token, filters)
    raise AssertionError("paging did not end")


def in_order(handlers: list[dict[str, Any]]) -> list[str]:
    return [
        h["handler_id"]
        for h in sorted(
            handlers, key=lambda h: order_key(h["status"], h["workflow_name"], h["handler_id"])
        )
    ]


@pytest.mark.parametrize(
    ("statuses", "names"),
    [
        (None, None),
        (["running"], None),
        (["failed", "running"], ["beta", "alpha"]),
        (None, ["alpha-2"]),
    ],
)
async def test_pages_cover_every_handler_once_in_order(
    store: AbstractWorkflowStore, statuses: list[str] | None, names: list[str] | None
) -> None:
    await seed(store, 37)
    filters = HandlerFilter.of(statuses, names)
    whole = [h.model_dump(mode="json") for h in await store.query(filters.query())]
    expected = in_order(whole)
    assert expected, "the filters match something"
    for limit in (1, 4, 100):
        listed = [h["handler_id"] for h in await all_pages(store, filters, limit)]
        assert listed == expected, limit


async def test_handlers_added_between_pages_never_shift_a_page(
    store: AbstractWorkflowStore,
) -> None:
    await seed(store, 20)
    filters = HandlerFilter.of(["running"], None)
    first = await list_page(store, filters, None, 3)
    await seed(store, 20, start=100)  # more running handlers, some sorting before the cursor
    rest = await all_pages(store, filters, 3, after=decode_token(first["next_page_token"], filters))
    listed = first["handlers"] + rest
    ids = [h["handler_id"] for h in listed]
    assert len(ids) == len(set(ids)), "no handler twice"
    keys = [order_key(h["status"], h["workflow_name"], h["handler_id"]) for h in listed]
    assert keys == sorted(keys)
    assert set(in_order(first["handlers"])) <= set(ids)


async def test_a_page_stops_before_the_byte_budget(
    store: AbstractWorkflowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(store, 12)
    monkeypatch.setattr(handler_pages, "PAGE_BYTES", 1500)
    filters = HandlerFilter.of(None, None)
    page = await list_page(store, filters, None, 100)
    assert 1 <= len(page["handlers"]) < 12
    assert len(str(page["handlers"])) < 3000
    listed = await all_pages(store, filters, 100)
    assert len(listed) == 12


def test_bad_limits_and_tokens_are_page_errors() -> None:
    filters = HandlerFilter.of(["running"], None)
    for raw in ("0", "-1", "1001", "ten", "1.5"):
        with pytest.raises(PageError, match="limit"):
            handler_pages.parse_limit(raw)
    assert handler_pages.parse_limit(None) == DEFAULT_LIMIT
    token = handler_pages.encode_token(Position("running", "alpha", "h1"), filters)
    assert decode_token(token, filters) == Position("running", "alpha", "h1")
    with pytest.raises(PageError, match="other filters"):
        decode_token(token, HandlerFilter.of(["completed"], None))
    for bad in ("x", "!!!", token[:-3], "eyJ2IjogMX0"):
        with pytest.raises(PageError, match="page_token"):
            decode_token(bad, filters)


@pytest.fixture
async def http(store: AbstractWorkflowStore) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[handlers_route(store, "/deployments/d")])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test/deployments/d"
    ) as client:
        yield client


async def test_an_old_client_gets_the_first_page_of_the_default_size(
    store: AbstractWorkflowStore, http: httpx.AsyncClient
) -> None:
    await seed(store, 4 * DEFAULT_LIMIT + 20)
    client = WorkflowClient(httpx_client=http)
    listed = await client.get_handlers(status=["running"])
    assert len(listed.handlers) == DEFAULT_LIMIT
    raw = (await http.get("/handlers", params={"status": "running"})).json()
    assert [h["handler_id"] for h in raw["handlers"]] == [h.handler_id for h in listed.handlers]
    assert raw["next_page_token"]
    nxt = await http.get(
        "/handlers", params={"status": "running", "page_token": raw["next_page_token"]}
    )
    assert nxt.status_code == 200
    assert len(nxt.json()["handlers"]) == 5 and "next_page_token" not in nxt.json()


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "abc"},
        {"limit": "5000"},
        {"page_token": "garbage"},
        {"status": "sleeping"},
    ],
)
async def test_bad_paging_parameters_are_400(
    store: AbstractWorkflowStore, http: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await http.get("/handlers", params=params)
    assert response.status_code == 400
    assert response.json()["detail"]


async def test_the_deployed_app_pages_with_the_servers_cors_and_input_guard(
    tmp_path: Path,
) -> None:
    from .test_input_safety import served

    async with served(tmp_path) as app:
        for _ in range(3):
            await app.waiting("ask", "PromptEvent")
        first = await app.client.get(
            "/handlers", params={"limit": "2"}, headers={"Origin": "http://ui.example"}
        )
        assert first.status_code == 200
        assert first.headers["access-control-allow-origin"] == "http://ui.example"
        assert len(first.json()["handlers"]) == 2
        rest = await app.client.get(
            "/handlers", params={"limit": "2", "page_token": first.json()["next_page_token"]}
        )
        assert len(rest.json()["handlers"]) == 1 and "next_page_token" not in rest.json()
        refused = await app.client.get("/handlers", params={"limit": "0"})
        assert refused.status_code == 400 and "limit" in refused.json()["detail"]
