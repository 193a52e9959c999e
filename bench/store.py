"""DynamoDB store cost per workflow step, against the SQLite store (a script: prints figures).

    uv run python -m bench.store [--steps 20] [--long 100]

Runs a looping workflow (one step execution per iteration) and a HITL run through
the official WorkflowServer with llamaws's runtime stack, once on SQLite and once
on DynamoDB (a moto server started here, reached over HTTP like AWS). DynamoDB
requests are counted by type with botocore's ``before-call.dynamodb.*`` hook;
"bytes written" is DynamoDB's item size of every PutItem / UpdateItem.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from llama_agents.server import AbstractWorkflowStore, SqliteWorkflowStore, WorkflowServer
from workflows import Workflow, step
from workflows.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)

from llamaws.adapter.runtime_stack import durable_runtime
from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore
from llamaws.adapter.store.table import item_size
from llamaws.local.engine import start_local_engine

__all__ = ["main"]

WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


class Next(Event):
    n: int
    payload: str


class Loop(Workflow):
    """``steps`` executions of one step, each passing a 200-byte payload on."""

    @step
    async def advance(self, ev: StartEvent | Next) -> Next | StopEvent:
        n = ev.n + 1 if isinstance(ev, Next) else 1
        limit = int(ev.steps) if isinstance(ev, StartEvent) else int(ev.payload.split(":")[0])
        if n >= limit:
            return StopEvent(result={"steps": n})
        return Next(n=n, payload=f"{limit}:" + "x" * 200)


class Ask(Workflow):
    """Two steps around a human answer."""

    @step
    async def ask(self, ev: StartEvent) -> InputRequiredEvent:
        return InputRequiredEvent(prefix="Your name?")  # type: ignore[call-arg]

    @step
    async def answer(self, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=f"Hello {ev.response}")


@dataclass
class Meter:
    """DynamoDB requests by type and bytes written, from botocore's event hooks."""

    requests: Counter[str] = field(default_factory=Counter)
    bytes_written: int = 0
    items: Counter[str] = field(default_factory=Counter)
    """Items put, by kind: E (event), T (tick), S (state), HA(NDLER)."""

    def count(self, event_name: str, **_: Any) -> None:
        """``before-call.dynamodb.*``: one request on the wire."""
        self.requests[event_name.rsplit(".", 1)[-1]] += 1

    def measure(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        """``before-parameter-build.dynamodb.*``: the API parameters of a request."""
        operation = event_name.rsplit(".", 1)[-1]
        if operation == "PutItem":
            self.bytes_written += item_size(params["Item"])
            self.items[params["Item"]["SK"]["S"][:2].rstrip("#") or "?"] += 1
        elif operation == "UpdateItem":
            self.bytes_written += item_size(
                {**params["Key"], **params.get("ExpressionAttributeValues", {})}
            )

    def reset(self) -> None:
        self.requests.clear()
        self.items.clear()
        self.bytes_written = 0

    @property
    def writes(self) -> int:
        return sum(self.requests[op] for op in WRITES)


@asynccontextmanager
async def serving(store: AbstractWorkflowStore) -> AsyncIterator[httpx.AsyncClient]:
    server = WorkflowServer(workflow_store=store, runtime=durable_runtime(store))
    server.add_workflow("loop", Loop(timeout=None))
    server.add_workflow("ask", Ask(timeout=None))
    await server.start()
    try:
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            yield client
    finally:
        await server.stop()


async def run_loop(client: httpx.AsyncClient, steps: int) -> None:
    response = await client.post("/workflows/loop/run", json={"start_event": {"steps": steps}})
    assert response.status_code == 200, response.text
    assert response.json()["result"]["value"]["result"] == {"steps": steps}


async def run_hitl(client: httpx.AsyncClient) -> None:
    started = await client.post("/workflows/ask/run-nowait", json={"start_event": {}})
    handler_id = started.json()["handler_id"]
    answer = {"event": {"type": "HumanResponseEvent", "value": {"response": "Ada"}}}
    deadline = time.monotonic() + 30
    while (posted := await client.post(f"/events/{handler_id}", json=answer)).status_code != 200:
        assert time.monotonic() < deadline, posted.text
        await asyncio.sleep(0.02)
    while (done := await client.get(f"/handlers/{handler_id}")).status_code != 200:
        assert time.monotonic() < deadline, done.text
        await asyncio.sleep(0.02)
    assert done.json()["result"]["value"]["result"] == "Hello Ada"


async def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


def line(label: str, meter: Meter, steps: int, seconds: float) -> str:
    by_type = ", ".join(f"{op} {n}" for op, n in sorted(meter.requests.items()))
    return (
        f"{label}: {steps} steps, {seconds * 1000:.0f} ms | requests: {by_type} | "
        f"writes/step {meter.writes / steps:.2f}, bytes written/step "
        f"{meter.bytes_written / steps:.0f}, scans {meter.requests['Scan']} | items put: "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(meter.items.items()))
    )


async def bench(steps: int, long_steps: int, repeats: int) -> None:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    engine = start_local_engine()
    endpoint = engine.endpoint
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = SqliteWorkflowStore(str(Path(tmp) / "bench.db"), poll_interval=0.05)
            dynamo = DynamoWorkflowStore(
                DynamoSettings(table_name="bench", endpoint_url=endpoint, s3_bucket="bench-spill")
            )
            dynamo.create_resources()
            meter = Meter()
            events = dynamo.table.client.meta.events
            events.register("before-call.dynamodb.*", meter.count)
            events.register("before-parameter-build.dynamodb.*", meter.measure)

            times: dict[str, dict[str, float]] = {"sqlite": {}, "dynamodb": {}}
            for label, store in (("sqlite", sqlite), ("dynamodb", dynamo)):
                async with serving(store) as client:
                    await run_loop(client, 3)  # warm-up: imports, connections
                    for case, action in (
                        (f"loop {steps}", lambda c=client: run_loop(c, steps)),
                        (f"loop {long_steps}", lambda c=client: run_loop(c, long_steps)),
                        ("hitl", lambda c=client: run_hitl(c)),
                    ):
                        best = float("inf")
                        for _ in range(repeats):
                            meter.reset()
                            best = min(best, await timed(action))
                        times[label][case] = best
                        if label == "dynamodb":
                            case_steps = 2 if case == "hitl" else int(case.split()[1])
                            print(line(f"dynamodb {case}", meter, case_steps, best))
            print()
            for case, sqlite_time in times["sqlite"].items():
                dynamo_time = times["dynamodb"][case]
                print(
                    f"wall time {case}: sqlite {sqlite_time * 1000:.0f} ms, dynamodb (moto) "
                    f"{dynamo_time * 1000:.0f} ms, ratio {dynamo_time / sqlite_time:.1f}x"
                )
    finally:
        engine.stop()


def main() -> None:
    """Parse the arguments and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--long", type=int, default=100, help="a longer run, for bytes/step")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(bench(args.steps, args.long, args.repeats))


if __name__ == "__main__":
    main()
