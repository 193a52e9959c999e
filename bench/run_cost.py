"""What a run costs in the cloud: Lambda invocations and DynamoDB requests (a script:
prints figures, asserts nothing).

    uv run python -m bench.run_cost [--runs 20]

Through the real Lambda container, in process (``tests/lambda_service.py``: the same
``Container`` Lambda runs, API Gateway v2 events, asynchronous ``continue``
invocations run one by one), with the table on a moto server over HTTP. For each case,
after a warm-up: Lambda invocations per run and the handler's time per run (on this
machine: Lambda's CPU at 1024 MB differs, so read it as an order of magnitude), and
the DynamoDB requests by type with the request units they consume (writes: 1 per KB
of each item written; reads: 1 per 4 KB read, all counted as strongly consistent),
counted with botocore's ``before-call`` / ``after-call`` hooks on the container's
client. Then the price of a million runs at the us-east-1 list prices below, and
what an idle deployment spends (the sweep).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from llamaws.adapter.lambda_runtime.container import ContainerSettings
from llamaws.adapter.store import DynamoWorkflowStore
from llamaws.adapter.store.table import item_size
from llamaws.local.engine import start_local_engine
from tests.engines import AWS_TEST_ENV
from tests.lambda_service import LambdaService

ROOT = Path(__file__).resolve().parents[1]

# us-east-1 list prices (USD), checked 2026-11:
LAMBDA_PER_REQUEST = 0.20 / 1_000_000  # https://aws.amazon.com/lambda/pricing/
LAMBDA_ARM_PER_GB_SECOND = 0.0000133334  # arm64, first 6 billion GB-s a month
DYNAMO_PER_WRU = 0.625 / 1_000_000  # on-demand https://aws.amazon.com/dynamodb/pricing/
DYNAMO_PER_RRU = 0.125 / 1_000_000
MEMORY_GB = 1.0  # the stack's default memory_mb = 1024

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@dataclass
class Meter:
    """DynamoDB requests and request units of one client."""

    requests: Counter[str] = field(default_factory=Counter)
    wru: int = 0
    rru: float = 0.0

    def before(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.requests[operation] += 1
        if operation in ("PutItem", "UpdateItem"):
            item = params.get("Item") or {
                **params.get("Key", {}),
                **params.get("ExpressionAttributeValues", {}),
            }
            self.wru += max(1, math.ceil(item_size(item) / 1024))
        elif operation == "DeleteItem":
            self.wru += 1
        elif operation == "BatchWriteItem":
            for requests in params.get("RequestItems", {}).values():
                for request in requests:
                    put = request.get("PutRequest", {}).get("Item")
                    self.wru += max(1, math.ceil(item_size(put) / 1024)) if put else 1

    def after(self, event_name: str, parsed: dict[str, Any], **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if operation in WRITES:
            return
        items: list[dict[str, Any]] = []
        if "Item" in parsed:
            items = [parsed["Item"]]
        elif "Items" in parsed:
            items = list(parsed["Items"])
        elif "Responses" in parsed:
            items = [i for table in parsed["Responses"].values() for i in table]
        size = sum(item_size(item) for item in items)
        self.rru += max(1, math.ceil(size / 4096))  # as strongly consistent: an upper bound

    def snapshot(self) -> tuple[Counter[str], int, float]:
        return Counter(self.requests), self.wru, self.rru


@dataclass
class Case:
    name: str
    invocations: int
    seconds: float
    requests: Counter[str]
    wru: float
    rru: float

    def price_per_million(self) -> tuple[float, float]:
        lambda_cost = self.invocations * LAMBDA_PER_REQUEST + (
            self.seconds * MEMORY_GB * LAMBDA_ARM_PER_GB_SECOND
        )
        dynamo_cost = self.wru * DYNAMO_PER_WRU + self.rru * DYNAMO_PER_RRU
        return lambda_cost * 1_000_000, dynamo_cost * 1_000_000


def start(service: LambdaService, base: str, workflow: str, body: dict[str, Any]) -> str:
    status, _, raw = service.request("POST", f"{base}/workflows/{workflow}/run-nowait",
                                     json_body=body)  # fmt: skip
    assert status == 200, raw
    return str(json.loads(raw)["handler_id"])


def inline(service: LambdaService, base: str) -> int:
    status, _, raw = service.request(
        "POST", f"{base}/workflows/greet/run", json_body={"start_event": {"name": "Ada"}}
    )
    assert status == 200, raw
    return 1 + len(service.drain())


def nowait(service: LambdaService, base: str) -> int:
    start(service, base, "greet", {"start_event": {"name": "Ada"}})
    return 1 + len(service.drain())


def sweep(service: LambdaService, base: str) -> int:
    service.containers[0].invoke({"llamaws": {"kind": "sweep"}}).result()
    return 1 + len(service.drain())


def hitl(service: LambdaService, base: str) -> int:
    handler = start(service, base, "ask", {"start_event": {}})
    count = 1 + len(service.drain())
    answer = {"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}}
    status, _, raw = service.request("POST", f"{base}/events/{handler}", json_body=answer)
    assert status == 200, raw
    count += 1 + len(service.drain())
    status, _, raw = service.request("GET", f"{base}/handlers/{handler}")
    assert json.loads(raw)["status"] == "completed", raw
    return count + 1


CASES: dict[str, list[tuple[str, Callable[[LambdaService, str], int]]]] = {
    "hello": [("hello: run (inline)", inline), ("hello: run-nowait", nowait),
              ("idle: one sweep", sweep)],
    "hitl": [("hitl: run-nowait, answer, result", hitl)],
}  # fmt: skip


def measure(name: str, meter: Meter, runs: int, one: Callable[[], int]) -> Case:
    """Run ``one`` (returns its invocations) ``runs`` times; per-run averages."""
    one()  # warm-up: imports, connections, the first append's sequence lookups
    before = meter.snapshot()
    started = time.perf_counter()
    invocations = sum(one() for _ in range(runs))
    seconds = time.perf_counter() - started
    requests, wru, rru = meter.snapshot()
    requests.subtract(before[0])
    per_run = Counter({k: v / runs for k, v in requests.items() if v})
    return Case(name, round(invocations / runs), seconds / runs, per_run,
                (wru - before[1]) / runs, (rru - before[2]) / runs)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    os.environ.update(AWS_TEST_ENV)
    engine = start_local_engine()
    work = Path(tempfile.mkdtemp(prefix="llamaws-run-cost-"))
    try:
        cases = []
        for example in ("hello", "hitl"):
            app = work / example
            shutil.copytree(ROOT / "examples" / example, app)
            settings = ContainerSettings(
                app_dir=app,
                table=f"llamaws-bench-{uuid.uuid4().hex[:8]}",
                dynamodb_endpoint=engine.endpoint,
                s3_endpoint=engine.endpoint,
                s3_bucket="llamaws-spill",
                create_table=True,
                auth="none",
            )
            service = LambdaService(settings, containers=1, dispatch=False)
            store = service.containers[0].container.driver.store
            assert isinstance(store, DynamoWorkflowStore)
            client = store.table.client
            meter = Meter()
            client.meta.events.register("before-call.dynamodb.*", meter.before)
            client.meta.events.register("after-call.dynamodb.*", meter.after)
            base = f"/deployments/{example}"
            try:
                for name, one in CASES[example]:
                    run = partial(one, service, base)
                    cases.append(measure(name, meter, args.runs, run))
            finally:
                service.close()
        print(
            f"per run, averaged over {args.runs} runs after a warm-up (moto server, this machine)"
        )
        for case in cases:
            lambda_m, dynamo_m = case.price_per_million()
            requests = ", ".join(f"{k} {v:g}" for k, v in sorted(case.requests.items()))
            print(
                f"{case.name}: {case.invocations} invocation(s), {case.seconds * 1000:.0f} ms "
                f"handler time | DynamoDB {requests} = {case.wru:.1f} WRU, {case.rru:.1f} RRU"
                f" | per 1M runs: Lambda ${lambda_m:.2f}, DynamoDB ${dynamo_m:.2f}"
            )
        idle = next(c for c in cases if c.name.startswith("idle"))
        lambda_m, dynamo_m = idle.price_per_million()
        monthly = 30 * 24 * 60 / 5  # the default schedule: every 5 minutes
        print(
            f"idle: {monthly:.0f} sweeps a month (sweep_minutes = 5) = "
            f"${(lambda_m + dynamo_m) * monthly / 1_000_000:.4f} a month before the free tier"
        )
    finally:
        engine.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
