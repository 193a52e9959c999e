"""Races closed: idle release under store latency, and two writers of one handler.

Idle release: the app of ``examples/hitl`` in process on a SQLite store that takes
10-20 ms per call (a seeded delay on every read and write, DynamoDB's latency) and a
50 ms idle timeout, so releases happen while events and cancels arrive. With
``llama-agents-server`` 0.8.0's own idle-release decorator, 15 of 50 cancels answered
"cancelled" while the handler stayed ``running``, and every answered run stalled.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.client.protocol.serializable_events import EventEnvelopeWithMetadata
from llama_agents.server import HandlerQuery, PersistentHandler, SqliteWorkflowStore

from llamaws.adapter.app import create_app
from llamaws.adapter.config import resolve_deployment

from .support import EXAMPLES
from .test_input_safety import fresh_workflows

ANSWER = {"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}}
RUNS = 50


class SlowStore(SqliteWorkflowStore):
    """SQLite with DynamoDB's latency: every handler, tick and event call waits 10-20 ms."""

    def __init__(self, path: str) -> None:
        super().__init__(path, poll_interval=0.02)
        self._random = random.Random(7)

    async def _latency(self) -> None:
        await asyncio.sleep(self._random.uniform(0.01, 0.02))

    async def query(self, query: HandlerQuery) -> list[PersistentHandler]:
        await self._latency()
        return await super().query(query)

    async def update(self, handler: PersistentHandler) -> None:
        await self._latency()
        await super().update(handler)

    async def append_tick(self, run_id: str, tick_data: dict[str, Any]) -> None:
        await self._latency()
        await super().append_tick(run_id, tick_data)

    async def append_event(self, run_id: str, event: EventEnvelopeWithMetadata) -> None:
        await self._latency()
        await super().append_event(run_id, event)


@asynccontextmanager
async def slow_hitl(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    store = SlowStore(str(tmp_path / "workflows.db"))
    app = create_app(
        resolve_deployment(EXAMPLES / "hitl"),
        fresh_workflows("hitl"),
        store,
        idle_timeout=0.05,
        lifespan=False,
    )
    await app.start()
    try:
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test/deployments/hitl", timeout=60
        ) as client:
            yield client
    finally:
        await app.stop()


async def act_on_runs_around_their_release(
    client: httpx.AsyncClient, act: str
) -> list[tuple[str, httpx.Response]]:
    """Start RUNS ``ask`` runs; post an answer to (or cancel) each at a seeded moment."""
    moments = random.Random(11)

    async def one(delay: float) -> tuple[str, httpx.Response]:
        started = await client.post("/workflows/ask/run-nowait", json={})
        handler_id = str(started.json()["handler_id"])
        await asyncio.sleep(delay)
        if act == "cancel":
            return handler_id, await client.post(f"/handlers/{handler_id}/cancel")
        return handler_id, await client.post(f"/events/{handler_id}", json=ANSWER)

    return await asyncio.gather(*(one(moments.uniform(0, 0.3)) for _ in range(RUNS)))


async def statuses_once_settled(client: httpx.AsyncClient, handler_ids: list[str]) -> list[str]:
    """The handlers' statuses once none is running, or after 20 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        statuses = [
            (await client.get(f"/handlers/{handler_id}")).json()["status"]
            for handler_id in handler_ids
        ]
        if "running" not in statuses or loop.time() > deadline:
            return statuses
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_cancels_that_meet_an_idle_release_all_leave_the_run_cancelled(
    tmp_path: Path,
) -> None:
    async with slow_hitl(tmp_path) as client:
        answered = await act_on_runs_around_their_release(client, "cancel")
        assert all(r.json() == {"status": "cancelled"} for _, r in answered)
        statuses = await statuses_once_settled(client, [h for h, _ in answered])
    assert statuses.count("cancelled") == RUNS, statuses


@pytest.mark.slow
async def test_events_that_meet_an_idle_release_all_finish_their_runs(tmp_path: Path) -> None:
    async with slow_hitl(tmp_path) as client:
        answered = await act_on_runs_around_their_release(client, "answer")
        assert all(r.status_code == 200 for _, r in answered)
        statuses = await statuses_once_settled(client, [h for h, _ in answered])
    assert statuses.count("completed") == RUNS, statuses
