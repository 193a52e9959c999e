"""What wait tokens cost a HITL run (a script: prints figures).

    uv run python -m bench.waits [--runs 30]

A two-step HITL run (``ask``: an ``InputRequiredEvent``, then the answer) is started,
answered as soon as its prompt is stored, and awaited, ``--runs`` times one after the
other, in this process through the ASGI app. Three ways, on SQLite and on DynamoDB (a
moto server started here, over HTTP):

- ``baseline``: llamaws's server without wait tokens (the runtime stack and awaited
  delivery only), answered with ``POST /events``;
- ``tokens, POST /events``: the app with wait tokens (issued, announced, consumed);
- ``tokens, success``: the same, answered with ``POST /tokens/<token>/success``.

Printed per way: the median start-to-finished time, the median answer call, and the
ratio to the baseline run in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from llama_agents.server import AbstractWorkflowStore, SqliteWorkflowStore, WorkflowServer

from llamaws.adapter.app import create_app
from llamaws.adapter.config import resolve_deployment
from llamaws.adapter.delivery import use_awaited_delivery
from llamaws.adapter.loader import LoadedWorkflow, load_workflows
from llamaws.adapter.runtime_stack import durable_runtime
from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore
from llamaws.local.engine import start_local_engine

__all__ = ["main"]

HITL = Path(__file__).resolve().parents[1] / "examples" / "hitl"
ANSWER = {"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}}


def _ask() -> list[LoadedWorkflow]:
    item = next(i for i in load_workflows(resolve_deployment(HITL)) if i.name == "ask")
    return [LoadedWorkflow("ask", type(item.workflow)(timeout=None), item.additional_events)]


@asynccontextmanager
async def _client(store: AbstractWorkflowStore, tokens: bool) -> AsyncIterator[httpx.AsyncClient]:
    if tokens:
        app = create_app(resolve_deployment(HITL), _ask(), store, lifespan=False)
        await app.start()
        asgi: Any = app.app
        base = "http://bench/deployments/hitl"
    else:
        server = WorkflowServer(workflow_store=store, runtime=durable_runtime(store))
        use_awaited_delivery(server)
        for item in _ask():
            server.add_workflow(item.name, item.workflow, additional_events=item.additional_events)
        await server.start()
        asgi = server.app
        base = "http://bench"
    try:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url=base, timeout=60) as client:
            yield client
    finally:
        await (app.stop() if tokens else server.stop())


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(10_000):
        if await check():
            return
        await asyncio.sleep(0.002)
    raise TimeoutError("the run did not get there")


async def _one(
    client: httpx.AsyncClient, store: AbstractWorkflowStore, how: str
) -> tuple[float, float]:
    """One run: (start to finished, the answer call) in seconds."""
    began = time.perf_counter()
    started = (await client.post("/workflows/ask/run-nowait", json={"start_event": {}})).json()
    handler = f"/handlers/{started['handler_id']}"

    async def asked() -> bool:
        events = await store.query_events(started["run_id"])
        return any(e.event.type == "PromptEvent" for e in events)

    async def finished() -> bool:
        return bool((await client.get(handler)).json()["status"] != "running")

    await _until(asked)
    answered = time.perf_counter()
    if how == "success":
        token = (await client.get(f"{handler}/waits")).json()["waits"][0]["token"]
        answered = time.perf_counter()
        response = await client.post(f"/tokens/{token}/success", json=ANSWER)
    else:
        response = await client.post(f"/events/{started['handler_id']}", json=ANSWER)
    answer_call = time.perf_counter() - answered
    assert response.status_code == 200, response.text
    await _until(finished)
    return time.perf_counter() - began, answer_call


async def _measure(make_store: Any, runs: int) -> dict[str, tuple[float, float]]:
    figures = {}
    for name, tokens, how in (
        ("baseline", False, "events"),
        ("tokens, POST /events", True, "events"),
        ("tokens, success", True, "success"),
    ):
        store = make_store()
        async with _client(store, tokens) as client:
            await _one(client, store, how)  # warm up
            samples = [await _one(client, store, how) for _ in range(runs)]
        figures[name] = (
            statistics.median(s[0] for s in samples),
            statistics.median(s[1] for s in samples),
        )
    return figures


def _print(label: str, figures: dict[str, tuple[float, float]]) -> None:
    base = figures["baseline"][0]
    for name, (run, answer) in figures.items():
        print(
            f"{label:8} {name:22} run {run * 1000:7.1f} ms (x{run / base:4.2f} baseline)   "
            f"answer call {answer * 1000:6.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(1_000_000))
        _print(
            "sqlite",
            asyncio.run(
                _measure(
                    lambda: SqliteWorkflowStore(
                        str(Path(tmp) / f"w{next(counter)}.db"), poll_interval=0.01
                    ),
                    args.runs,
                )
            ),
        )
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        os.environ.setdefault(name, value)
    engine = start_local_engine()
    try:

        def dynamo() -> AbstractWorkflowStore:
            store = DynamoWorkflowStore(
                DynamoSettings(
                    table_name=f"bench-waits-{uuid.uuid4().hex[:8]}",
                    endpoint_url=engine.endpoint,
                    region_name="us-east-1",
                    poll_interval=0.01,
                )
            )
            store.create_resources()
            return store

        _print("dynamodb", asyncio.run(_measure(dynamo, args.runs)))
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
