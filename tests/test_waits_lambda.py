"""Wait tokens in the Lambda execution model: several containers, one DynamoDB table (moto).

Containers (threads with their own loop and app) get API Gateway v2 events; the
runs are driven by ``continue`` invocations under their lease, so a token call
usually lands on a container that does not hold the run. Deadlines are enforced by
the ``sweep`` invocation (invoked by hand here) and on every access.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from llamaws.adapter.lambda_runtime.container import ContainerSettings

from .engines import MotoServer
from .lambda_service import LambdaService
from .support import wait_until
from .waits_support import (
    ANSWER,
    BASE,
    VERDICT,
    result_of,
    until_past,
    until_within,
    write_gate_app,
)

pytestmark = pytest.mark.timeout(90)

SWEEP = {"llamaws": {"kind": "sweep"}}


@pytest.fixture
def gate(moto_server: MotoServer, tmp_path: Path) -> Iterator[Callable[[int], LambdaService]]:
    """Start the gate app on ``n`` containers (all sharing one fresh table)."""
    app_dir = write_gate_app(tmp_path)
    table = f"llamaws-waits-{uuid.uuid4().hex[:10]}"
    services: list[LambdaService] = []

    def start(containers: int = 1) -> LambdaService:
        settings = ContainerSettings(
            app_dir=app_dir,
            table=table,
            dynamodb_endpoint=moto_server.endpoint,
            s3_endpoint=moto_server.endpoint,
            create_table=True,
            auth="none",  # the token routes under auth: tests/test_waits_rie.py
        )
        service = LambdaService(settings, containers)
        services.append(service)
        return service

    yield start
    for service in services:
        with contextlib.suppress(RuntimeError):  # closed by the test already
            service.close()


def call(
    service: LambdaService, method: str, path: str, body: Any = None, container: int = 0
) -> tuple[int, Any]:
    status, _, raw = service.request(method, BASE + path, json_body=body, container=container)
    return status, json.loads(raw) if raw else None


def start_run(service: LambdaService, workflow: str, **start_event: Any) -> str:
    status, started = call(
        service, "POST", f"/workflows/{workflow}/run-nowait", {"start_event": start_event}
    )
    assert status == 200, started
    return str(started["handler_id"])


def open_wait(service: LambdaService, handler_id: str, container: int = 0) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        status, listed = call(service, "GET", f"/handlers/{handler_id}/waits", container=container)
        assert status == 200, listed
        return listed["waits"][0] if listed["waits"] else None

    return wait_until(found, what=f"an open wait of {handler_id}")


def finished(service: LambdaService, handler_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        _, handler = call(service, "GET", f"/handlers/{handler_id}")
        return handler if handler["status"] != "running" else None

    return wait_until(done, timeout=30, what=f"handler {handler_id} to finish")


def sweep(service: LambdaService) -> dict[str, Any]:
    result: dict[str, Any] = service.containers[0].invoke(SWEEP).result()
    return result


def test_a_token_completes_a_run_another_container_drives(
    gate: Callable[[int], LambdaService],
) -> None:
    service = gate(2)
    handler_id = start_run(service, "gate")
    token = open_wait(service, handler_id, container=1)["token"]
    status, completed = call(service, "POST", f"/tokens/{token}/success", ANSWER, container=1)
    assert (status, completed["status"]) == (200, "completed")
    assert result_of(finished(service, handler_id)) == "answer: yes"
    status, again = call(service, "POST", f"/tokens/{token}/success", ANSWER)
    assert (status, again["code"]) == (409, "TaskAlreadyCompleted")


def test_plain_post_events_consumes_the_token(gate: Callable[[int], LambdaService]) -> None:
    service = gate(1)
    handler_id = start_run(service, "review")
    token = open_wait(service, handler_id)["token"]
    assert call(service, "POST", f"/events/{handler_id}", VERDICT)[0] == 200
    assert result_of(finished(service, handler_id)) == "verdict: ok"
    status, used = call(service, "POST", f"/tokens/{token}/success", VERDICT)
    assert (status, used["code"]) == (409, "TaskAlreadyCompleted")


def test_rejections_reach_the_run_caught_or_not(gate: Callable[[int], LambdaService]) -> None:
    service = gate(2)
    caught = start_run(service, "review")
    uncaught = start_run(service, "strict")
    for handler_id in (caught, uncaught):
        token = open_wait(service, handler_id)["token"]
        status, failed = call(
            service, "POST", f"/tokens/{token}/failure", {"error": "Rejected", "cause": "no"}, 1
        )
        assert (status, failed["status"]) == (200, "failed")
    assert result_of(finished(service, caught)) == "failed: Rejected: no"
    handler = finished(service, uncaught)
    assert handler["status"] == "failed"
    assert "wait 'ask' failed: Rejected: no" in handler["error"]


def test_the_sweep_times_out_waits_past_their_deadline(
    gate: Callable[[int], LambdaService],
) -> None:
    service = gate(1)
    handler_id = start_run(service, "review", timeout_seconds=2)
    wait = open_wait(service, handler_id)
    token = wait["token"]
    wait_until(lambda: service.idle(), what="the run to park")
    until_past(wait["expires_at"])  # nothing runs between invocations: still waiting
    assert call(service, "GET", f"/handlers/{handler_id}")[1]["status"] == "running"
    assert sweep(service)["waits_expired"] == [token]
    assert result_of(finished(service, handler_id)) == "timed out: Timeout"


def test_a_token_call_after_the_deadline_times_the_wait_out_at_once(
    gate: Callable[[int], LambdaService],
) -> None:
    service = gate(1)
    handler_id = start_run(service, "gate", heartbeat_seconds=2)
    wait = open_wait(service, handler_id)
    token, deadline = wait["token"], wait["heartbeat_expires_at"]
    started = time.monotonic()
    while time.monotonic() - started < 2.5:  # heartbeats keep it open past 2 s
        until_within(deadline, 1)  # a heartbeat in the second half: a loaded machine has 1 s
        status, beat = call(service, "POST", f"/tokens/{token}/heartbeat")
        assert status == 200, beat
        deadline = beat["heartbeat_expires_at"]
    until_past(deadline)  # then none: the deadline passes, and no sweep runs
    status, late = call(service, "POST", f"/tokens/{token}/success", ANSWER)
    assert (status, late["code"]) == (410, "TaskTimedOut")
    assert result_of(finished(service, handler_id)) == "timed out: HeartbeatTimeout"


def test_of_twenty_racing_completions_over_three_containers_exactly_one_wins(
    gate: Callable[[int], LambdaService],
) -> None:
    service = gate(3)
    handler_id = start_run(service, "gate")
    token = open_wait(service, handler_id)["token"]

    def attempt(n: int) -> int:
        body = {"event": {"type": "HumanResponseEvent", "value": {"response": f"r{n}"}}}
        path = f"/tokens/{token}/success" if n % 2 else f"/events/{handler_id}"
        return call(service, "POST", path, body, container=n % 3)[0]

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(attempt, range(20)))
    assert statuses == [200] + [409] * 19
    assert str(result_of(finished(service, handler_id))).startswith("answer: r")


def test_a_token_survives_the_containers_that_issued_it(
    gate: Callable[[int], LambdaService],
) -> None:
    first = gate(1)
    handler_id = start_run(first, "review")
    token = open_wait(first, handler_id)["token"]
    wait_until(lambda: first.idle(), what="the run to park")
    first.close()
    second = gate(1)  # cold containers, same table
    assert call(second, "POST", f"/tokens/{token}/success", VERDICT)[0] == 200
    assert result_of(finished(second, handler_id)) == "verdict: ok"
