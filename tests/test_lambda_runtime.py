"""The Lambda handler's execution model, in process: real v2 events, real DynamoDB (moto).

Several containers (threads with their own loop and app) share one table; async
self-invocations are dispatched to free containers like Lambda's event queue.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from llamaws.adapter.lambda_runtime.container import ContainerSettings

from .engines import MotoServer
from .lambda_service import LambdaService, moto_settings
from .support import EXAMPLES, wait_until

pytestmark = pytest.mark.timeout(90)

ANSWER = {"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}}


@pytest.fixture
def settings_for(
    moto_server: MotoServer, dynamo_table_name: str, tmp_path: Path
) -> Callable[..., ContainerSettings]:
    def make(example: str, **overrides: Any) -> ContainerSettings:
        app_dir = tmp_path / example
        if not app_dir.exists():
            shutil.copytree(EXAMPLES / example, app_dir)
        return moto_settings(app_dir, moto_server.endpoint, dynamo_table_name, **overrides)

    return make


@pytest.fixture
def service_for(
    settings_for: Callable[..., ContainerSettings],
) -> Iterator[Callable[..., LambdaService]]:
    services: list[LambdaService] = []

    def start(
        example: str, containers: int = 1, budget: float = 30.0, **settings: Any
    ) -> LambdaService:
        service = LambdaService(settings_for(example, **settings), containers, budget)
        services.append(service)
        return service

    yield start
    for service in services:
        service.close()


def body(response: tuple[int, dict[str, str], bytes]) -> Any:
    return json.loads(response[2])


def park(service: LambdaService, base: str, workflow: str) -> str:
    """Start ``workflow`` with run-nowait and wait until its drive has ended (parked)."""
    handler_id = body(
        service.request(
            "POST", f"{base}/workflows/{workflow}/run-nowait", json_body={"start_event": {}}
        )
    )["handler_id"]
    wait_until(lambda: service.idle(), what="the run to park")
    return str(handler_id)


def handler_done(service: LambdaService, base: str, handler_id: str) -> dict[str, Any] | None:
    status, _, raw = service.request("GET", f"{base}/handlers/{handler_id}")
    return json.loads(raw) if status == 200 else None


def test_run_drives_inline_and_returns_the_result(
    service_for: Callable[..., LambdaService],
) -> None:
    service = service_for("hello")
    status, _, raw = service.request(
        "POST", "/deployments/hello/workflows/greet/run", json_body={"start_event": {"name": "Ada"}}
    )
    assert status == 200, raw
    assert json.loads(raw)["result"]["value"] == {"result": "Hello, Ada!"}


def test_run_nowait_returns_at_once_and_an_async_invocation_finishes_it(
    service_for: Callable[..., LambdaService],
) -> None:
    service = service_for("hello")
    # Handed off right after the start: the start event's fields must survive.
    names = ["Ada", "Bo", "Cy", "Di"]
    handler_ids = []
    for name in names:
        status, _, raw = service.request(
            "POST",
            "/deployments/hello/workflows/greet/run-nowait",
            json_body={"start_event": {"name": name}},
        )
        assert status == 200, raw
        handler_ids.append(json.loads(raw)["handler_id"])
    for name, handler_id in zip(names, handler_ids, strict=True):

        def finished(h: str = handler_id) -> dict[str, Any] | None:
            return handler_done(service, "/deployments/hello", h)

        done = wait_until(finished, what="run to complete")
        assert done["result"]["value"] == {"result": f"Hello, {name}!"}


def test_hitl_answer_posted_to_a_released_run_completes_it(
    service_for: Callable[..., LambdaService],
) -> None:
    service = service_for("hitl")
    base = "/deployments/hitl"
    handler_id = park(service, base, "ask")  # the driver stopped it once it waited
    assert not service.containers[0].container.retain.live_run_ids
    status, _, raw = service.request("POST", f"{base}/events/{handler_id}", json_body=ANSWER)
    assert (status, json.loads(raw)) == (200, {"status": "sent"})
    done = wait_until(lambda: handler_done(service, base, handler_id), what="answered run")
    assert done["result"]["value"] == {"result": "You said: blue"}


def test_wait_for_event_run_takes_a_typed_answer(service_for: Callable[..., LambdaService]) -> None:
    service = service_for("hitl")
    base = "/deployments/hitl"
    handler_id = park(service, base, "quiz")
    answer = {"event": {"type": "AnswerEvent", "value": {"answer": "42"}}}
    assert service.request("POST", f"{base}/events/{handler_id}", json_body=answer)[0] == 200
    done = wait_until(lambda: handler_done(service, base, handler_id), what="answered quiz")
    assert done["result"]["value"] == {"result": "Answer: 42"}


def test_event_stream_is_a_bounded_long_poll_resumed_by_sequence(
    service_for: Callable[..., LambdaService],
) -> None:
    service = service_for("hitl")
    base = "/deployments/hitl"
    handler_id = park(service, base, "ask")
    started = time.monotonic()
    status, _, raw = service.request(
        "GET", f"{base}/events/{handler_id}", params={"after_sequence": "-1"}, budget=4.0
    )
    assert status == 200 and time.monotonic() - started < 4.0
    text = raw.decode()
    assert "PromptEvent" in text and text.endswith("retry: 200\n\n")
    last_id = max(int(line[4:]) for line in text.splitlines() if line.startswith("id: "))
    service.request("POST", f"{base}/events/{handler_id}", json_body=ANSWER)
    wait_until(lambda: handler_done(service, base, handler_id), what="answered run")
    status, _, raw = service.request(
        "GET", f"{base}/events/{handler_id}", headers={"last-event-id": str(last_id)}
    )
    resumed = raw.decode()
    ids = [int(line[4:]) for line in resumed.splitlines() if line.startswith("id: ")]
    assert ids and min(ids) > last_id
    assert "StopEvent" in resumed and "retry:" not in resumed


def test_event_stream_answers_once_new_events_are_there_not_at_the_end_of_its_window(
    settings_for: Callable[..., ContainerSettings], tmp_path: Path
) -> None:
    from .progress_app import write_progress_app

    write_progress_app(tmp_path)
    service = LambdaService(settings_for("progress"), containers=2, dispatch=False)
    base = "/deployments/progress"
    try:
        status, _, raw = service.request(
            "POST",
            f"{base}/workflows/ticks/run-nowait",
            json_body={"start_event": {"count": 8, "interval": 0.3}},
        )
        handler_id = json.loads(raw)["handler_id"]
        driving = service.containers[1].invoke(service.queue.get(), budget=30.0)  # continue
        polls: list[str] = []
        last = "-1"
        while not polls or "StopEvent" not in polls[-1]:
            # A 30 s window each: the run publishes every 0.3 s and ends after ~2.4 s.
            status, _, raw = service.request(
                "GET", f"{base}/events/{handler_id}", params={"after_sequence": last}, budget=30
            )
            assert status == 200 and len(polls) < 40
            polls.append(raw.decode())
            ids = [line[4:] for line in polls[-1].splitlines() if line.startswith("id: ")]
            last = ids[-1] if ids else last
        driving.result()
    finally:
        service.close()
    first = polls[0]
    assert "Progress" in first and "StopEvent" not in first and first.endswith("retry: 200\n\n")
    progress = [
        json.loads(line[6:])["value"]["index"]
        for text in polls
        for line in text.splitlines()
        if line.startswith("data: ") and '"Progress"' in line
    ]
    assert progress == list(range(8))  # each once, in order, across the resumed polls


def test_bad_input_gets_the_reference_errors(service_for: Callable[..., LambdaService]) -> None:
    service = service_for("hitl")
    base = "/deployments/hitl"
    assert service.request("POST", f"{base}/workflows/nope/run", json_body={})[0] == 404
    handler_id = park(service, base, "ask")
    bad = {"event": {"type": "NoSuchEvent", "value": {}}}
    assert service.request("POST", f"{base}/events/{handler_id}", json_body=bad)[0] == 400
    assert service.request("POST", f"{base}/events/unknown", json_body=ANSWER)[0] == 404


def test_request_over_lambdas_payload_limit_is_413(
    service_for: Callable[..., LambdaService],
) -> None:
    service = service_for("hello")
    big = {"start_event": {"name": "x" * (6 * 1024 * 1024)}}
    status, _, raw = service.request(
        "POST", "/deployments/hello/workflows/greet/run", json_body=big
    )
    assert status == 413
    assert "request limit of AWS Lambda" in json.loads(raw)["detail"]


def test_cancel_and_purge_a_parked_run(service_for: Callable[..., LambdaService]) -> None:
    service = service_for("hitl")
    base = "/deployments/hitl"
    handler_id = park(service, base, "ask")
    assert body(service.request("POST", f"{base}/handlers/{handler_id}/cancel")) == {
        "status": "cancelled"
    }
    status, _, raw = service.request("GET", f"{base}/handlers/{handler_id}")
    assert (status, json.loads(raw)["status"]) == (500, "cancelled")
    purged = service.request(
        "POST", f"{base}/handlers/{handler_id}/cancel", params={"purge": "true"}
    )
    assert body(purged) == {"status": "deleted"}
    assert service.request("GET", f"{base}/handlers/{handler_id}")[0] == 404


TICKER_APP = """
import asyncio
from pathlib import Path
from workflows import Workflow, step
from workflows.events import StartEvent, StopEvent


class Ticker(Workflow):
    @step
    async def tick(self, ev: StartEvent) -> StopEvent:
        out = Path(ev.get("path"))
        for _ in range(int(ev.get("ticks", 40))):
            with out.open("a") as handle:
                handle.write("x")
            await asyncio.sleep(0.05)
        return StopEvent(result=out.stat().st_size)


ticker = Ticker(timeout=None)
"""


def _ticker_app(tmp_path: Path) -> Path:
    app = tmp_path / "ticker"
    (app / "src").mkdir(parents=True)
    (app / "src" / "ticker_app.py").write_text(textwrap.dedent(TICKER_APP))
    (app / "pyproject.toml").write_text(
        '[tool.llamadeploy]\nname = "ticker"\nworkflows = { ticker = "ticker_app:ticker" }\n'
    )
    return app


def test_nothing_of_a_run_executes_between_invocations(
    settings_for: Callable[..., ContainerSettings], tmp_path: Path
) -> None:
    _ticker_app(tmp_path)
    settings = settings_for("ticker")
    service = LambdaService(settings, containers=1, dispatch=False)
    try:
        out = tmp_path / "ticks.txt"
        status, _, _ = service.request(
            "POST",
            "/deployments/ticker/workflows/ticker/run-nowait",
            json_body={"start_event": {"path": str(out), "ticks": 40}},
        )
        assert status == 200
        size = out.stat().st_size if out.exists() else 0
        time.sleep(0.5)  # the step would have written ~10 more ticks if it still ran
        assert (out.stat().st_size if out.exists() else 0) == size
        assert not service.containers[0].container.retain.live_run_ids
        assert service.queue.qsize() == 1  # handed to a continue invocation instead
    finally:
        service.close()


def test_run_whose_budget_runs_out_answers_504_and_continues(
    settings_for: Callable[..., ContainerSettings], tmp_path: Path
) -> None:
    _ticker_app(tmp_path)
    service = LambdaService(settings_for("ticker", safety_margin_seconds=0.5), budget=10.0)
    try:
        out = tmp_path / "ticks.txt"
        status, _, raw = service.request(
            "POST",
            "/deployments/ticker/workflows/ticker/run",
            json_body={"start_event": {"path": str(out), "ticks": 30}},
            budget=1.5,
        )
        assert status == 504
        handler_id = json.loads(raw)["handler_id"]
        assert handler_id in json.loads(raw)["detail"]
        done = wait_until(
            lambda: handler_done(service, "/deployments/ticker", handler_id),
            timeout=30,
            what="the run to finish in continue invocations",
        )
        assert done["status"] == "completed"
    finally:
        service.close()


def test_concurrent_answers_across_containers_are_each_delivered_once(
    service_for: Callable[..., LambdaService],
    settings_for: Callable[..., ContainerSettings],
    tmp_path: Path,
) -> None:
    app = tmp_path / "collect"
    (app / "src").mkdir(parents=True)
    (app / "src" / "collect_app.py").write_text(textwrap.dedent(COLLECT_APP))
    (app / "pyproject.toml").write_text(
        '[tool.llamadeploy]\nname = "collect"\nworkflows = { collect = "collect_app:collect" }\n'
    )
    service = service_for("collect", containers=3)
    base = "/deployments/collect"
    handler_id = park(service, base, "collect")

    def post(i: int) -> int:
        event = {"event": {"type": "Item", "value": {"n": i}}}
        return service.request(
            "POST", f"{base}/events/{handler_id}", json_body=event, container=i % 3
        )[0]

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(post, range(50)))
    assert statuses == [200] * 50
    done = wait_until(
        lambda: handler_done(service, base, handler_id), timeout=60, what="all 50 items"
    )
    assert sorted(done["result"]["value"]["result"]) == list(range(50))


COLLECT_APP = """
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent


class Item(Event):
    n: int


class Collect(Workflow):
    @step
    async def start(self, ev: StartEvent) -> Item | None:
        return None  # items come from outside; the annotation declares the type

    @step(num_workers=1)
    async def gather(self, ctx: Context, ev: Item) -> StopEvent | None:
        seen = await ctx.store.get("seen", default=[])
        seen.append(ev.n)
        await ctx.store.set("seen", seen)
        if len(seen) >= 50:
            return StopEvent(result=seen)
        return None


collect = Collect(timeout=None)
"""


def test_continue_of_a_parked_run_ends_idle_without_spending_its_budget(
    service_for: Callable[..., LambdaService],
) -> None:
    service = service_for("hitl")
    handler_id = park(service, "/deployments/hitl", "ask")
    started = time.monotonic()
    result = (
        service.containers[0]
        .invoke({"llamaws": {"kind": "continue", "handler_id": handler_id}}, budget=20.0)
        .result()
    )
    assert result == {"handler_id": handler_id, "outcome": "idle"}
    assert time.monotonic() - started < 5.0


def _ticker_run(service: LambdaService, out: Path, ticks: int) -> str:
    status, _, raw = service.request(
        "POST",
        "/deployments/ticker/workflows/ticker/run-nowait",
        json_body={"start_event": {"path": str(out), "ticks": ticks}},
    )
    assert status == 200, raw
    return str(json.loads(raw)["handler_id"])


def _grows(path: Path) -> bool:
    if not path.exists():
        return False
    size = path.stat().st_size
    time.sleep(0.2)
    return path.stat().st_size > size


def test_second_container_does_not_drive_a_run_another_drives(
    settings_for: Callable[..., ContainerSettings], tmp_path: Path
) -> None:
    _ticker_app(tmp_path)
    service = LambdaService(settings_for("ticker"), containers=2, dispatch=False)
    try:
        out = tmp_path / "ticks.txt"
        handler_id = _ticker_run(service, out, ticks=60)
        continue_event = {"llamaws": {"kind": "continue", "handler_id": handler_id}}
        first = service.containers[0].invoke(continue_event, budget=30.0)
        wait_until(lambda: _grows(out), what="container 0 to drive the step")
        second = service.containers[1].invoke(continue_event, budget=30.0).result()
        assert second == {"handler_id": handler_id, "outcome": "busy"}
        assert not service.containers[1].container.retain.live_run_ids
        assert first.result()["outcome"] == "finished"
    finally:
        service.close()


def test_run_of_a_killed_driver_is_resumed_after_its_lease_expires(
    settings_for: Callable[..., ContainerSettings], tmp_path: Path, aws_env: dict[str, str]
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from .support import ROOT

    _ticker_app(tmp_path)
    settings = settings_for("ticker", lease_seconds=2.0)
    service = LambdaService(settings, containers=1, dispatch=False)
    try:
        out = tmp_path / "ticks.txt"
        handler_id = _ticker_run(service, out, ticks=40)
        service.queue.get()  # this continue goes to a process that will be killed
        with service._lock:
            service._in_flight -= 1
        env = {
            **os.environ,
            "LLAMAWS_APP_DIR": str(settings.app_dir),
            "LLAMAWS_TABLE": settings.table,
            "AWS_ENDPOINT_URL_DYNAMODB": str(settings.dynamodb_endpoint),
            "AWS_ENDPOINT_URL_S3": str(settings.s3_endpoint),
            "LLAMAWS_S3_BUCKET": str(settings.s3_bucket),
            "LLAMAWS_LEASE_SECONDS": "2",
            "LLAMAWS_ASYNC_INVOKE_URL": "http://127.0.0.1:9/unused",
        }
        driver = subprocess.Popen(
            [sys.executable, "-m", "tests.lambda_driver_process", handler_id], cwd=ROOT, env=env
        )
        try:
            wait_until(lambda: _grows(out), timeout=30, what="the driver process to run the step")
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait()
        base = "/deployments/ticker"
        assert handler_done(service, base, handler_id) is None  # still running, undriven

        def swept() -> bool:
            result = service.containers[0].invoke({"llamaws": {"kind": "sweep"}}).result()
            return handler_id in result["continued"]

        wait_until(swept, timeout=15, interval=0.5, what="the sweeper to see the expired lease")
        assert [r["outcome"] for r in service.drain()] == ["finished"]
        done = handler_done(service, base, handler_id)
        assert done is not None and done["status"] == "completed"
        _, _, raw = service.request(
            "GET",
            f"{base}/events/{handler_id}",
            params={"after_sequence": "-1", "include_internal": "true"},
        )
        ids = [int(line[4:]) for line in raw.decode().splitlines() if line.startswith("id: ")]
        assert ids == list(range(len(ids)))
    finally:
        service.close()


def _rest_v1_event(method: str, path: str) -> dict[str, Any]:
    """An API Gateway REST API (payload 1.0) proxy event."""
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"Host": "abc.execute-api.us-east-1.amazonaws.com", "Accept": "*/*"},
        "multiValueHeaders": {
            "Host": ["abc.execute-api.us-east-1.amazonaws.com"],
            "Accept": ["*/*"],
        },
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": "req",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "pytest"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def _alb_event(method: str, path: str) -> dict[str, Any]:
    """An Application Load Balancer target-group event."""
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
                "targetgroup/llamaws/0123456789abcdef"
            }
        },
        "httpMethod": method,
        "path": path,
        "queryStringParameters": {},
        "headers": {"host": "llamaws.example", "accept": "*/*"},
        "body": "",
        "isBase64Encoded": False,
    }


@pytest.mark.parametrize("make_event", [_rest_v1_event, _alb_event], ids=["rest-v1", "alb"])
def test_rest_api_and_alb_events_reach_the_workflow_api(
    service_for: Callable[..., LambdaService], make_event: Callable[[str, str], dict[str, Any]]
) -> None:
    service = service_for("hello")
    response = (
        service.containers[0].invoke(make_event("GET", "/deployments/hello/workflows")).result()
    )
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["workflows"] == ["greet"]


def test_event_for_a_step_that_cannot_take_it_is_refused_before_the_inbox(
    service_for: Callable[..., LambdaService],
) -> None:
    service = service_for("hitl")
    base = "/deployments/hitl"
    handler_id = park(service, base, "ask")
    wrong_step = {**ANSWER, "step": "ask"}  # `ask` takes StartEvent, not HumanResponseEvent
    status, _, raw = service.request("POST", f"{base}/events/{handler_id}", json_body=wrong_step)
    assert status == 400 and "Step 'ask' can take now" in json.loads(raw)["detail"]
    right_step = {**ANSWER, "step": "answer"}
    assert service.request("POST", f"{base}/events/{handler_id}", json_body=right_step)[0] == 200
    done = wait_until(lambda: handler_done(service, base, handler_id), what="answered run")
    assert done["result"]["value"] == {"result": "You said: blue"}
