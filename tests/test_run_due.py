"""Sweeps read only what is due: the due marks of the Lambda runtime (``RUN#DUE``).

In process (real v2 events, DynamoDB on moto): a run handed to a ``continue`` that
never comes is swept once its mark is due; parked runs leave no mark, so a sweep
reads none of them; ``full`` still looks at every running handler.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llamaws.adapter.lambda_runtime.coordination import Coordination
from llamaws.adapter.lambda_runtime.events import Sweep, parse_internal_event
from llamaws.adapter.store.table import run_due_mark_key

from .engines import MotoServer
from .lambda_service import LambdaService, moto_settings
from .support import EXAMPLES, wait_until

pytestmark = pytest.mark.timeout(120)

BASE = "/deployments/hitl"
FAR = 10**14  # a "now" after every mark


@pytest.fixture
def start(
    moto_server: MotoServer, dynamo_table_name: str, tmp_path: Path
) -> Iterator[Callable[..., LambdaService]]:
    services: list[LambdaService] = []

    def make(*, dispatch: bool = True, lease_seconds: float = 30.0) -> LambdaService:
        app_dir = tmp_path / "hitl"
        if not app_dir.exists():
            shutil.copytree(EXAMPLES / "hitl", app_dir)
        settings = moto_settings(
            app_dir, moto_server.endpoint, dynamo_table_name, lease_seconds=lease_seconds
        )
        service = LambdaService(settings, 1, dispatch=dispatch)
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()


def coordination(service: LambdaService) -> Coordination:
    return service.containers[0].container.driver.coordination


def run_on(service: LambdaService, coro: Any) -> Any:
    container = service.containers[0]
    return container.executor.submit(container.container.loop.run_until_complete, coro).result()


def sweep(service: LambdaService, *, full: bool = False) -> list[str]:
    result = service.containers[0].invoke(Sweep(full=full).payload()).result()
    return list(result["continued"])


def start_nowait(service: LambdaService) -> str:
    _, _, raw = service.request(
        "POST", f"{BASE}/workflows/ask/run-nowait", json_body={"start_event": {}}
    )
    return str(json.loads(raw)["handler_id"])


def drop_queued_continue(service: LambdaService) -> None:
    """The asynchronous ``continue`` is lost (throttled, dropped): nobody drives the run."""
    payload = service.queue.get(timeout=10)
    assert payload["llamaws"]["kind"] == "continue"
    with service._lock:
        service._in_flight -= 1


def test_parked_runs_leave_no_due_mark_and_the_sweep_reads_none(
    start: Callable[..., LambdaService],
) -> None:
    service = start()
    parked = []
    for _ in range(3):
        parked.append(start_nowait(service))
        wait_until(service.idle, what="the run to park")
    assert run_on(service, coordination(service).due(FAR)) == []
    assert sweep(service) == []
    assert sweep(service, full=True) == []  # parked and quiet: nothing to continue either


def test_a_run_whose_continue_is_lost_is_swept_once_its_mark_is_due(
    start: Callable[..., LambdaService],
) -> None:
    service = start(dispatch=False, lease_seconds=1.0)
    handler_id = start_nowait(service)
    drop_queued_continue(service)
    assert run_on(service, coordination(service).due(FAR)) == [handler_id]

    def swept() -> bool:
        return handler_id in sweep(service)

    wait_until(swept, timeout=30, interval=0.3, what="the sweep to continue the run")
    assert [r["outcome"] for r in service.drain()] == ["idle"]  # now parked, waiting
    assert run_on(service, coordination(service).due(FAR)) == []
    status, _, raw = service.request(
        "POST",
        f"{BASE}/events/{handler_id}",
        json_body={"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}},
    )
    assert status == 200, raw
    service.drain()
    status, _, raw = service.request("GET", f"{BASE}/handlers/{handler_id}")
    assert (status, json.loads(raw)["status"]) == (200, "completed")


def test_a_full_sweep_finds_a_stale_run_that_has_no_mark(
    start: Callable[..., LambdaService],
) -> None:
    service = start(dispatch=False, lease_seconds=1.0)
    handler_id = start_nowait(service)
    drop_queued_continue(service)
    table = coordination(service).table
    run_on(
        service,
        table.call(
            "delete_item",
            TableName=table.table_name,
            Key=table.marshal(run_due_mark_key(handler_id)),
        ),
    )  # a run from before due marks existed
    time.sleep(1.2)  # past the stale age of one lease
    assert sweep(service) == []
    assert sweep(service, full=True) == [handler_id]
    assert [r["outcome"] for r in service.drain()] == ["idle"]


def test_the_mark_of_a_finished_run_is_cleared_by_the_sweep(
    start: Callable[..., LambdaService],
) -> None:
    service = start()
    handler_id = start_nowait(service)
    wait_until(service.idle, what="the run to park")
    service.request("POST", f"{BASE}/handlers/{handler_id}/cancel")
    run_on(service, coordination(service).mark_due(handler_id, after_ms=-1))
    assert sweep(service) == []
    assert run_on(service, coordination(service).due(FAR)) == []


def test_sweep_events_parse_full_and_refuse_a_non_boolean() -> None:
    assert parse_internal_event({"llamaws": {"kind": "sweep"}}) == Sweep()
    assert parse_internal_event({"llamaws": {"kind": "sweep", "full": True}}) == Sweep(full=True)
    with pytest.raises(ValueError, match="full"):
        parse_internal_event({"llamaws": {"kind": "sweep", "full": "yes"}})
