"""Races closed: idle release under store latency, and two writers of one handler.

Two writers: two DynamoDB stores (two processes) on one table of the moto server.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.client.protocol.serializable_events import EventEnvelopeWithMetadata
from llama_agents.server import HandlerQuery, PersistentHandler, SqliteWorkflowStore

from llamaws.adapter.app import create_app
from llamaws.adapter.config import resolve_deployment
from llamaws.adapter.runtime_stack import durable_runtime
from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore
from llamaws.adapter.store.dynamo import HandlerConflict
from llamaws.adapter.upstream import PersistenceDecorator

from .engines import MotoServer
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
    """The handlers' statuses once none is running, or after 60 s (a loaded machine)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
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


# -- two writers of one DynamoDB handler item ---------------------------------------------


def dynamo_store(endpoint: str, table: str) -> DynamoWorkflowStore:
    """A store of its own (its own client and version memory): another process."""
    return DynamoWorkflowStore(
        DynamoSettings(table_name=table, endpoint_url=endpoint, region_name="us-east-1")
    )


@pytest.fixture
async def two_writers(
    moto_server: MotoServer, dynamo_table_name: str
) -> tuple[DynamoWorkflowStore, DynamoWorkflowStore]:
    first = dynamo_store(moto_server.endpoint, dynamo_table_name)
    first.create_resources()
    return first, dynamo_store(moto_server.endpoint, dynamo_table_name)


def handler(index: int) -> PersistentHandler:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    return PersistentHandler(
        handler_id=f"h{index}",
        workflow_name="ask",
        status="running",
        run_id=f"r{index}",
        started_at=started,
        updated_at=started,
    )


async def test_two_writers_updating_one_handler_both_land(
    two_writers: tuple[DynamoWorkflowStore, DynamoWorkflowStore],
) -> None:
    # One process cancels while another marks the run idle: a read-then-overwrite
    # store keeps only one of the two changes.
    first, second = two_writers
    for index in range(20):
        await first.update(handler(index))
    idle = datetime(2026, 1, 2, tzinfo=UTC)
    await asyncio.gather(
        *(first.update_handler_status(f"r{i}", status="cancelled") for i in range(20)),
        *(second.update_handler_status(f"r{i}", idle_since=idle) for i in range(20)),
    )
    stored = await second.query(HandlerQuery(handler_id_in=[f"h{i}" for i in range(20)]))
    assert [(h.status, h.idle_since) for h in stored] == [("cancelled", idle)] * 20


async def test_overwriting_a_handler_changed_by_another_writer_is_a_conflict(
    two_writers: tuple[DynamoWorkflowStore, DynamoWorkflowStore],
) -> None:
    first, second = two_writers
    await first.update(handler(0))
    [seen] = await second.query(HandlerQuery(handler_id_in=["h0"]))
    await first.update_handler_status("r0", status="completed")
    seen.error = "stale"
    with pytest.raises(HandlerConflict):
        await second.update(seen)
    third = dynamo_store(second.settings.endpoint_url or "", second.settings.table_name)
    with pytest.raises(HandlerConflict):  # a second creation under one id
        await third.update(handler(0))
    [kept] = await first.query(HandlerQuery(handler_id_in=["h0"]))
    assert (kept.status, kept.error) == ("completed", None)


class ResumeMeetsAnotherProcessStore(SqliteWorkflowStore):
    """A shared store: while this process's start-up resume lists running handlers,
    another process stores the handler of a run it has just started (no tick yet)."""

    async def query(self, query: HandlerQuery) -> list[PersistentHandler]:
        if query.status_in == ["running"] and query.is_idle is False:
            await super().update(
                PersistentHandler(
                    handler_id="other",
                    workflow_name="greet",
                    status="running",
                    run_id="other-run",
                    started_at=datetime.now(UTC),
                )
            )
        return await super().query(query)


async def test_startup_resume_leaves_runs_started_after_it_began_alone(tmp_path: Path) -> None:
    # Upstream's resume (with its grace turned off) took such a run for a crashed one
    # and failed it: "handler crashed before persisting any state".
    store = ResumeMeetsAnotherProcessStore(str(tmp_path / "workflows.db"), poll_interval=0.02)
    runtime = durable_runtime(store)
    app = create_app(
        resolve_deployment(EXAMPLES / "hello"),
        fresh_workflows("hello"),
        store,
        lifespan=False,
        runtime=runtime,
    )
    await app.start()
    try:
        await asyncio.wait_for(resume_of(runtime), 10)
        (other,) = await store.query(HandlerQuery(handler_id_in=["other"]))
        assert (other.status, other.error) == ("running", None)
    finally:
        await app.stop()


async def resume_of(runtime: Any) -> None:
    """Wait for the durable stack's start-up resume to be over."""
    while not isinstance(runtime, PersistenceDecorator):
        runtime = runtime._decorated
    if runtime.resume_task is not None:
        await runtime.resume_task
