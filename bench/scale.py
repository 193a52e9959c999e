"""Cost as a deployment grows: listings, resumes and sweeps (a script: prints figures).

    uv run python -m bench.scale [--repeat 15] [--large 10000]

DynamoDB on the local engine (a moto server started here, reached over HTTP like
AWS). "Items read" counts the items DynamoDB returned to llamaws's requests (Query,
GetItem, BatchGetItem; a Query's ``ScannedCount``), through botocore's
``after-call`` hook on the store's own client. Each figure is the median of
``--repeat`` rounds; the ratios compare two sizes measured in this process.

1. **Listing**: ``GET /handlers?status=running`` (an old client: no ``limit``, so
   the default page of 100) with 100 and with ``--large`` stored handlers, all
   running (the listing's worst case), seeded with BatchWriteItem; beside it, the
   whole listing the reference server would answer (every running handler).
2. **Resume**: a run parked after a loop of steps (10, 100, 1,000 ticks in its
   journal, written by the real server); the time to rebuild its context as a resume
   does: from the snapshot the Lambda driver takes when the run goes idle, and from
   the whole journal (``snapshot_every = 0``, as upstream).
3. **Sweep**: one ``sweep`` invocation of the Lambda handler with 10 and with
   ``--large`` parked runs (seeded as a parked run's items: the handler, idle; no due
   mark) plus the same 3 runs due (a lost ``continue``); beside it, ``full: true``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from llama_agents.server import WorkflowServer
from starlette.applications import Starlette
from workflows import Workflow, step
from workflows.events import Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent
from workflows.plugins.basic import BasicRuntime

from llamaws.adapter.handler_pages import handlers_route
from llamaws.adapter.lambda_runtime.container import Container, ContainerSettings
from llamaws.adapter.runtime_stack import durable_runtime
from llamaws.adapter.snapshots import SnapshotTickPersistence
from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore
from llamaws.adapter.store.table import handler_gsi_key, handler_key, run_due_key, run_due_mark_key
from llamaws.local.engine import start_local_engine

__all__ = ["main"]

HITL = Path(__file__).resolve().parents[1] / "examples" / "hitl"
READS = ("Query", "GetItem", "BatchGetItem", "Scan")


class ItemsRead:
    """Items DynamoDB returned to one client's reads, counted per request."""

    def __init__(self, client: Any) -> None:
        self.items = 0
        self.requests = 0
        client.meta.events.register("after-call.dynamodb.*", self._count)

    def _count(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name not in READS:
            return
        self.requests += 1
        if "ScannedCount" in parsed:
            self.items += int(parsed["ScannedCount"])
        elif "Item" in parsed:
            self.items += 1
        elif "Responses" in parsed:
            self.items += sum(len(v) for v in parsed["Responses"].values())

    @contextmanager
    def counting(self) -> Iterator[list[int]]:
        start = self.items
        got: list[int] = []
        yield got
        got.append(self.items - start)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _store(endpoint: str) -> DynamoWorkflowStore:
    store = DynamoWorkflowStore(
        DynamoSettings(table_name=f"bench-{uuid.uuid4().hex[:8]}", endpoint_url=endpoint)
    )
    store.create_resources()
    return store


def _batch_put(store: DynamoWorkflowStore, items: list[dict[str, Any]]) -> None:
    """Seed ``items`` with BatchWriteItem, 25 per request, 4 requests at a time."""
    client = store.table.client

    def put(chunk: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {
            store.table.table_name: [
                {"PutRequest": {"Item": store.table.marshal(i)}} for i in chunk
            ]
        }
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    chunks = [items[i : i + 25] for i in range(0, len(items), 25)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(put, chunks))


def _handler_item(handler_id: str, workflow: str, *, idle: bool) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        **handler_key(handler_id),
        **handler_gsi_key("running", workflow, handler_id),
        "handler_id": handler_id,
        "workflow_name": workflow,
        "status": "running",
        "run_id": f"run-{handler_id}",
        "started_at": now,
        "updated_at": now,
        "idle_since": now if idle else None,
        "version": 1,
    }


# -- 1. listing -------------------------------------------------------------------------


async def _listing(endpoint: str, stored: int, repeat: int) -> tuple[float, int, float, int, float]:
    store = _store(endpoint)
    _batch_put(
        store,
        [_handler_item(f"h{i:06d}", ("ask", "quiz")[i % 2], idle=True) for i in range(stored)],
    )
    counter = ItemsRead(store.table.client)
    app = Starlette(routes=[handlers_route(store, "/d")])
    transport = httpx.ASGITransport(app=app)
    paged: list[float] = []
    whole: list[float] = []
    paged_items: list[int] = []
    whole_items: list[int] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(repeat):
            with counter.counting() as got:
                start = time.perf_counter()
                response = await client.get("/d/handlers", params={"status": "running"})
                paged.append(time.perf_counter() - start)
            assert response.status_code == 200 and response.json()["handlers"]
            paged_items.append(got[0])
            with counter.counting() as got:
                start = time.perf_counter()
                from llama_agents.server import HandlerQuery

                listed = await store.query(HandlerQuery(status_in=["running"]))
                whole.append(time.perf_counter() - start)
            assert len(listed) == stored
            whole_items.append(got[0])
    engine = []
    for _ in range(repeat):  # moto filters an index partition's items in Python
        start = time.perf_counter()
        await store.table.call(
            "query",
            TableName=store.table.table_name,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues=store.table.marshal({":pk": "ST#running"}),
            Limit=1,
        )
        engine.append(time.perf_counter() - start)
    return (
        _median_ms(paged),
        int(statistics.median(paged_items)),
        _median_ms(whole),
        int(statistics.median(whole_items)),
        _median_ms(engine),
    )


# -- 2. resume --------------------------------------------------------------------------


class Again(Event):
    left: int


class Question(InputRequiredEvent):
    prompt: str


class LoopThenAsk(Workflow):
    """``steps`` executions of one step, then a question (the run parks)."""

    @step
    async def begin(self, ev: StartEvent) -> Again:
        return Again(left=int(ev.get("steps", 1)))

    @step
    async def again(self, ev: Again) -> Again | Question:
        return Again(left=ev.left - 1) if ev.left > 1 else Question(prompt="go on?")

    @step
    async def answer(self, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=ev.response)


async def _parked_run(store: DynamoWorkflowStore, steps: int) -> str:
    server = WorkflowServer(workflow_store=store, runtime=durable_runtime(store))
    server.add_workflow("loop", LoopThenAsk(timeout=None))
    await server.start()
    try:
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            started = (
                await client.post(
                    "/workflows/loop/run-nowait", json={"start_event": {"steps": steps}}
                )
            ).json()
            run_id = str(started["run_id"])
            for _ in range(60_000):
                events = await store.query_events(run_id)
                if any(e.event.type == "Question" for e in events):
                    await asyncio.sleep(0.2)  # its last ticks
                    return run_id
                await asyncio.sleep(0.01)
    finally:
        await server.stop()
    raise AssertionError("the run never parked")


async def _resume(endpoint: str, steps: int, repeat: int) -> dict[str, Any]:
    store = _store(endpoint)
    run_id = await _parked_run(store, steps)
    ticks = len(await store.get_ticks(run_id))
    workflow = LoopThenAsk(timeout=None)
    persistence = SnapshotTickPersistence(BasicRuntime(), store=store)
    await persistence.checkpoint(workflow, run_id)  # what the Lambda driver does at idle
    counter = ItemsRead(store.table.client)

    async def timed(every: int) -> tuple[float, int]:
        persistence.snapshot_every = every
        samples, items = [], []
        for _ in range(repeat):
            with counter.counting() as got:
                start = time.perf_counter()
                rebuilt = await persistence.context_from_ticks(workflow, run_id)
                samples.append(time.perf_counter() - start)
            assert rebuilt is not None and rebuilt.exit_command is None
            items.append(got[0])
        return _median_ms(samples), int(statistics.median(items))

    async def engine_query() -> float:
        """The engine's own cost of one Query that finds nothing in the run's partition
        (moto filters a partition's items in Python: it grows with the partition)."""
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            await store.table.query(
                KeyConditionExpression="PK = :pk AND SK BETWEEN :a AND :b",
                ExpressionAttributeValues=store.table.marshal(
                    {":pk": f"R#{run_id}", ":a": "T#9999999998", ":b": "T#9999999999"}
                ),
                ConsistentRead=True,
            )
            samples.append(time.perf_counter() - start)
        return _median_ms(samples)

    snap_ms, snap_items = await timed(32)
    full_ms, full_items = await timed(0)
    return {
        "ticks": ticks,
        "snap_ms": snap_ms,
        "snap_items": snap_items,
        "full_ms": full_ms,
        "full_items": full_items,
        "engine_ms": await engine_query(),
    }


# -- 3. sweep ---------------------------------------------------------------------------


class Recorded:
    """The container's invoker: keeps the payloads (nothing is invoked)."""

    def __init__(self) -> None:
        self.payloads: list[Any] = []

    async def invoke_async(self, payload: Any) -> None:
        self.payloads.append(payload)


def _sweeps(
    endpoint: str, sizes: tuple[int, ...], repeat: int
) -> dict[int, tuple[int, int, float]]:
    """One container (a process imports the app once); the table grows to each size."""
    settings = ContainerSettings(
        app_dir=HITL,
        table=f"bench-{uuid.uuid4().hex[:8]}",
        dynamodb_endpoint=endpoint,
        create_table=True,
        auth="none",
    )
    container = Container(settings, Recorded())
    store = container.driver.store
    assert isinstance(store, DynamoWorkflowStore)
    marks = []
    items = []
    for i in range(3):  # a lost continue: running, not idle, its mark due
        handler_id = f"due{i}"
        items.append(_handler_item(handler_id, "quiz", idle=False))
        marks.append({**run_due_mark_key(handler_id), **run_due_key(1000 + i, handler_id),
                      "handler_id": handler_id, "due_ms": 1000 + i})  # fmt: skip
    _batch_put(store, items)
    counter = ItemsRead(store.table.client)
    figures: dict[int, tuple[int, int, float]] = {}
    seeded = 0
    for size in sizes:
        _batch_put(
            store, [_handler_item(f"p{i:06d}", "quiz", idle=True) for i in range(seeded, size)]
        )
        seeded = size
        due_items: list[int] = []
        full_items: list[int] = []
        latency: list[float] = []
        for _ in range(repeat):
            _batch_put(store, marks)  # due again (a sweep's continue pushes them on)
            with counter.counting() as got:
                start = time.perf_counter()
                answer = container.invoke({"llamaws": {"kind": "sweep"}}, None)
                latency.append(time.perf_counter() - start)
            assert len(answer["continued"]) == 3, answer
            due_items.append(got[0])
        for _ in range(max(1, repeat // 5)):
            with counter.counting() as got:
                container.invoke({"llamaws": {"kind": "sweep", "full": True}}, None)
            full_items.append(got[0])
        figures[size] = (
            int(statistics.median(due_items)),
            int(statistics.median(full_items)),
            _median_ms(latency),
        )
    return figures


# -- main ---------------------------------------------------------------------------------


def _ratio(large: float, small: float) -> str:
    return f"{large / small:.2f}x" if small else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--repeat", type=int, default=15, help="rounds per figure")
    parser.add_argument("--large", type=int, default=10_000, help="the large deployment's size")
    args = parser.parse_args(argv)
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    engine = start_local_engine()
    try:
        _run(engine.endpoint, args.repeat, args.large)
    finally:
        engine.stop()


def _run(endpoint: str, repeat: int, large: int) -> None:
    print(f"DynamoDB: moto server at {endpoint}; medians of {repeat} rounds\n")
    small = 100
    print("1. GET /handlers?status=running (default page of 100), all stored handlers running")
    figures = {n: asyncio.run(_listing(endpoint, n, repeat)) for n in (small, large)}
    print(
        f"   {'stored':>8} {'paged ms':>9} {'items':>6} {'whole ms':>9} {'items':>6}"
        f" {'engine: 1 Query Limit=1 ms':>27}"
    )
    for n, (ms, items, whole_ms, whole_items, engine_ms) in figures.items():
        print(
            f"   {n:>8} {ms:>9.1f} {items:>6} {whole_ms:>9.1f} {whole_items:>6} {engine_ms:>27.1f}"
        )
    big, little = figures[large], figures[small]
    print(
        f"   paged {large} vs {small}: latency {_ratio(big[0], little[0])}, "
        f"items {_ratio(big[1], little[1])} (goal <= 1.2x); less the engine's index scan: "
        f"{_ratio(big[0] - big[4], little[0] - little[4])}; "
        f"whole listing: latency {_ratio(big[2], little[2])}\n"
    )
    print("2. Resume: rebuild the context of a parked run (snapshot at idle + later ticks)")
    resumes = [asyncio.run(_resume(endpoint, steps, repeat)) for steps in (4, 49, 499)]
    print(
        f"   {'ticks':>6} {'snapshot ms':>12} {'items':>6} {'full replay ms':>15} {'items':>6}"
        f" {'engine: 1 empty Query ms':>25}"
    )
    for r in resumes:
        print(
            f"   {r['ticks']:>6} {r['snap_ms']:>12.1f} {r['snap_items']:>6} {r['full_ms']:>15.1f}"
            f" {r['full_items']:>6} {r['engine_ms']:>25.1f}"
        )
    first, last = resumes[0], resumes[-1]

    def net(r: dict[str, Any]) -> float:
        return max(float(r["snap_ms"] - 2 * r["engine_ms"]), 0.01)

    print(
        f"   {last['ticks']} vs {first['ticks']} ticks: snapshot "
        f"{_ratio(last['snap_ms'], first['snap_ms'])} (goal <= 1.2x), items "
        f"{_ratio(last['snap_items'], first['snap_items'])}; less the engine's partition scan"
        f" (2 Queries): {_ratio(net(last), net(first))};"
        f" full replay {_ratio(last['full_ms'], first['full_ms'])}\n"
    )
    print("3. One sweep invocation: parked runs (no due mark) + 3 runs due")
    sweeps = _sweeps(endpoint, (10, large), repeat)
    print(f"   {'parked':>8} {'items read':>11} {'ms':>7} {'full: items':>12}")
    for n, (items, full_items, ms) in sweeps.items():
        print(f"   {n:>8} {items:>11} {ms:>7.1f} {full_items:>12}")
    print(
        f"   {large} vs 10 parked: items {_ratio(sweeps[large][0], sweeps[10][0])} (goal: flat), "
        f"full sweep {_ratio(sweeps[large][1], sweeps[10][1])}"
    )


if __name__ == "__main__":
    main()
