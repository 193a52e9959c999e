"""End to end through the real Lambda runtime loops.

The handler ``llamaws.adapter.handler.handler`` runs under the streaming runtime loop
(``local/runtime_api.py``) or under ``awslambdaric`` inside the Runtime Interface
Emulator (``llamaws.local.rie``), its state in DynamoDB on the moto server. Two ways in:

- ``llamaws serve --lambda`` (a real emulator process) driven with the official
  ``llama-agents-client`` and raw HTTP: API Gateway v2 events, asynchronous
  ``continue`` invocations through the emulator's queue; examples/hello streams (the
  default), examples/hitl is buffered (bounded long-poll event streams);
- a bare :class:`RieContainer` invoked with hand-made v2 events, its asynchronous
  self-invocations captured by a local endpoint so the test decides when (and
  whether) they run.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.client import WorkflowClient

from llamaws.local.lambda_events import http_event, http_response
from llamaws.local.rie import Invocation, RieContainer

from .engines import MotoServer
from .lambda_capture import CapturedInvocations
from .support import EXAMPLES, ROOT, Emulator, free_port, wait_until

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

LAMBDA_TIMEOUT = 5
"""Function timeout of the emulated function: a bounded stream waits ~4 s at most."""


# -- fixtures -------------------------------------------------------------------------


def _copy_example(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    target = tmp_path_factory.mktemp(name) / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("workflows.db*"))
    return target


def _lambda_emulator(
    tmp_path_factory: pytest.TempPathFactory,
    moto: MotoServer,
    example: str,
    containers: int,
    streaming: bool = True,
) -> Iterator[Emulator]:
    import uuid

    args = [
        "--lambda", "--lambda-containers", str(containers),
        "--lambda-timeout", str(LAMBDA_TIMEOUT), "--sweep-interval", "2",
        "--persistence", "dynamodb", "--dynamodb-endpoint", moto.endpoint,
        "--dynamodb-table", f"llamaws-lambda-{uuid.uuid4().hex[:10]}",
    ]  # fmt: skip
    # These tests are about the execution model: the API is opened explicitly (auth has
    # its own tests, through the same handler, in tests/test_auth.py).
    emulator = Emulator(
        _copy_example(tmp_path_factory, example),
        free_port(),
        args,
        env={"LLAMAWS_AUTH": "none", "LLAMAWS_STREAMING": "1" if streaming else "0"},
    )
    emulator.start(wait=False)

    def ready() -> bool:
        # One patient request: a cold start takes seconds, and every abandoned short
        # poll would still occupy a container (and cold-start the next one).
        assert emulator.process is not None and emulator.process.poll() is None, emulator.logs()
        return httpx.get(f"{emulator.url}/health", timeout=LAMBDA_TIMEOUT + 5).status_code == 200

    wait_until(ready, timeout=60, interval=0.1, what="llamaws serve --lambda to answer")
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> Iterator[Emulator]:
    """``llamaws serve --lambda`` of examples/hello with the default pool of 2 containers
    (response streaming, the default)."""
    yield from _lambda_emulator(tmp_path_factory, moto_server, "hello", containers=2)


@pytest.fixture(scope="module")
def hitl(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> Iterator[Emulator]:
    """examples/hitl with 3 containers: a stream, an answer and a continue at once.

    Buffered (``streaming = false``): event streams are the long-poll, the fallback."""
    yield from _lambda_emulator(
        tmp_path_factory, moto_server, "hitl", containers=3, streaming=False
    )


def client_for(emulator: Emulator, deployment: str) -> WorkflowClient:
    return WorkflowClient(base_url=f"{emulator.url}/deployments/{deployment}")


def api(emulator: Emulator, deployment: str) -> httpx.Client:
    return httpx.Client(base_url=f"{emulator.url}/deployments/{deployment}", timeout=30)


def finished(http: httpx.Client, handler_id: str, timeout: float = 30) -> dict[str, Any]:
    """Poll ``GET /handlers/<id>`` until it answers 200 (completed)."""

    def check() -> dict[str, Any] | None:
        response = http.get(f"/handlers/{handler_id}")
        assert response.status_code in (200, 202), response.text
        return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]

    return wait_until(check, timeout=timeout, interval=0.1, what=f"handler {handler_id} done")


def sse_blocks(body: str) -> list[dict[str, str]]:
    """The fields of each SSE block (``id``, ``data``, ``retry``) in ``body``."""
    blocks = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
        )
        if fields:
            blocks.append(fields)
    return blocks


async def stream_until(
    client: WorkflowClient, handler_id: str, wanted: str, after: int = -1, rounds: int = 8
) -> tuple[list[str], list[int]]:
    """Event types and ids up to ``wanted``, resuming each bounded stream from its last id."""
    types: list[str] = []
    ids: list[int] = []
    last = after
    for _ in range(rounds):
        stream = client.get_workflow_events(handler_id, after_sequence=last)
        async for event in stream:
            types.append(event.type)
            sequence = stream.last_sequence
            assert isinstance(sequence, int)
            ids.append(sequence)
            if event.type == wanted:
                await stream.aclose()
                return types, ids
        assert isinstance(stream.last_sequence, int)
        last = stream.last_sequence
    raise AssertionError(f"no {wanted} after {rounds} streams: {types}")


# -- llamaws serve --lambda, the official client --------------------------------------


async def test_run_returns_the_result_from_the_lambda_handler(hello: Emulator) -> None:
    handler = await client_for(hello, "hello").run_workflow("greet", start_event={"name": "Ada"})
    assert handler.status == "completed"
    assert handler.result is not None and handler.result.value == {"result": "Hello, Ada!"}


async def test_run_nowait_is_completed_by_an_asynchronous_continue_invocation(
    hello: Emulator,
) -> None:
    client = client_for(hello, "hello")
    started = await client.run_workflow_nowait("greet", start_event={"name": "Ada"})
    assert started.status == "running"
    with api(hello, "hello") as http:
        done = finished(http, started.handler_id)
    assert done["result"]["value"] == {"result": "Hello, Ada!"}
    # The continue invocation's answer is logged once that invocation returns, which
    # can be a moment after the run it drove is stored as completed.
    wait_until(
        lambda: f'"handler_id": "{started.handler_id}"' in hello.logs(),
        timeout=10,
        what="the continue invocation's answer in the log",
    )


async def test_event_stream_of_a_finished_run_resumes_after_the_last_id(hello: Emulator) -> None:
    client = client_for(hello, "hello")
    started = await client.run_workflow_nowait("greet", start_event={"name": "Bo"})
    types, ids = await stream_until(client, started.handler_id, "StopEvent")
    assert types[-1] == "StopEvent" and ids == sorted(set(ids))
    with api(hello, "hello") as http:
        again = http.get(f"/events/{started.handler_id}", headers={"Last-Event-ID": str(ids[-1])})
    assert again.status_code in (200, 204)
    assert not [b for b in sse_blocks(again.text) if "data" in b]  # nothing twice


async def test_drained_stream_is_a_bodyless_204_that_logs_no_protocol_error(
    hello: Emulator,
) -> None:
    # It was a 204 with a JSON body: h11 logged a ~90-line traceback for every request.
    client = client_for(hello, "hello")
    started = await client.run_workflow_nowait("greet", start_event={"name": "Cy"})
    _, ids = await stream_until(client, started.handler_id, "StopEvent")
    with api(hello, "hello") as http:
        drained = http.get(f"/events/{started.handler_id}", params={"after_sequence": ids[-1]})
    assert drained.status_code == 204 and drained.content == b""
    assert "LocalProtocolError" not in hello.logs()


async def test_handler_list_shows_runs_driven_by_every_container(hello: Emulator) -> None:
    client = client_for(hello, "hello")
    ids = [
        (await client.run_workflow_nowait("greet", start_event={"name": f"n{i}"})).handler_id
        for i in range(3)
    ]
    with api(hello, "hello") as http:
        for handler_id in ids:
            finished(http, handler_id)
    listed = await client.get_handlers(status="completed", workflow_name="greet")
    assert set(ids) <= {h.handler_id for h in listed.handlers}


def test_request_over_six_megabytes_is_refused_with_413_before_any_invocation(
    hello: Emulator,
) -> None:
    body = b'{"start_event": {"name": "' + b"x" * (6 * 1024 * 1024) + b'"}}'
    with api(hello, "hello") as http:
        response = http.post("/workflows/greet/run", content=body)
    assert response.status_code == 413
    assert "x-amzn-requestid" not in response.headers  # the function never saw it


def test_sweep_invocations_run_on_the_schedule(hello: Emulator) -> None:
    wait_until(lambda: "async invocation (sweep) ->" in hello.logs(), timeout=15, what="a sweep")


async def test_input_required_event_is_answered_through_post_events(hitl: Emulator) -> None:
    client = client_for(hitl, "hitl")
    started = await client.run_workflow_nowait("ask", start_event={"prompt": "Colour?"})
    _, ids = await stream_until(client, started.handler_id, "PromptEvent")
    sent = await client.send_event(
        started.handler_id, {"type": "HumanResponseEvent", "value": {"response": "blue"}}
    )
    assert sent.status == "sent"
    _, later_ids = await stream_until(client, started.handler_id, "StopEvent", after=ids[-1])
    assert later_ids[0] > ids[-1]
    with api(hitl, "hitl") as http:
        done = finished(http, started.handler_id)
    assert done["result"]["value"] == {"result": "You said: blue"}


async def test_wait_for_event_is_answered_with_a_typed_event(hitl: Emulator) -> None:
    client = client_for(hitl, "hitl")
    started = await client.run_workflow_nowait("quiz", start_event={"question": "6x7?"})
    await stream_until(client, started.handler_id, "QuestionEvent")
    await client.send_event(started.handler_id, {"type": "AnswerEvent", "value": {"answer": "42"}})
    with api(hitl, "hitl") as http:
        done = finished(http, started.handler_id)
    assert done["result"]["value"] == {"result": "Answer: 42"}


def test_stream_of_a_waiting_run_is_a_bounded_long_poll_ending_with_retry(hitl: Emulator) -> None:
    with api(hitl, "hitl") as http:
        started = http.post("/workflows/ask/run-nowait", json={"start_event": {}}).json()
        handler_id = started["handler_id"]
        began = time.monotonic()
        first = http.get(f"/events/{handler_id}", params={"after_sequence": -1})
        elapsed = time.monotonic() - began
        blocks = sse_blocks(first.text)
        assert first.status_code == 200 and elapsed < LAMBDA_TIMEOUT + 1
        assert "retry" in blocks[-1]
        seen = [b for b in blocks if "data" in b]
        assert any(json.loads(b["data"])["type"] == "PromptEvent" for b in seen)
        last_id = seen[-1]["id"]
        http.post(
            f"/events/{handler_id}",
            json={"event": {"type": "HumanResponseEvent", "value": {"response": "red"}}},
        ).raise_for_status()
        rest = http.get(f"/events/{handler_id}", headers={"Last-Event-ID": last_id})
        later = [b for b in sse_blocks(rest.text) if "data" in b]
        assert [int(b["id"]) for b in later] == sorted(int(b["id"]) for b in later)
        assert all(int(b["id"]) > int(last_id) for b in later)
        assert json.loads(later[-1]["data"])["type"] == "StopEvent"
        assert finished(http, handler_id)["result"]["value"] == {"result": "You said: red"}


# -- a bare container, hand-made events -----------------------------------------------


@pytest.fixture
def captured() -> Iterator[CapturedInvocations]:
    queue = CapturedInvocations()
    yield queue
    queue.close()


def container_for(
    app_dir: Path, moto: MotoServer, captured: CapturedInvocations, log: Path, timeout: int = 30
) -> RieContainer:
    import uuid

    env = {
        "LLAMAWS_APP_DIR": str(app_dir),
        "LLAMAWS_TABLE": f"llamaws-rie-{uuid.uuid4().hex[:10]}",
        "LLAMAWS_CREATE_TABLE": "1",
        "AWS_ENDPOINT_URL_DYNAMODB": moto.endpoint,
        "AWS_ENDPOINT_URL_S3": moto.endpoint,
        "LLAMAWS_ASYNC_INVOKE_URL": captured.url,
        "LLAMAWS_AUTH": "none",
    }
    return RieContainer(
        "llamaws.adapter.handler.handler", env=env, cwd=ROOT, timeout=timeout, log=log.open("wb")
    )


def v2(method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A hand-made API Gateway v2 event (as a Function URL sends it)."""
    content = json.dumps(body).encode() if body is not None else b""
    headers = [("host", "abc.lambda-url.us-east-1.on.aws"), ("content-type", "application/json")]
    return http_event(method, path, "", headers, content)


def answer(invocation: Invocation) -> tuple[int, Any]:
    status, _, body = http_response(invocation.result())
    return status, json.loads(body) if body else None


@pytest.fixture(scope="module")
def hello_rie(
    moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RieContainer, CapturedInvocations]]:
    """examples/hello in one bare container; its async invocations captured, not run."""
    app_dir = _copy_example(tmp_path_factory, "hello")
    queue = CapturedInvocations()
    log = tmp_path_factory.mktemp("rie") / "rie.log"
    with container_for(app_dir, moto_server, queue, log) as container:
        yield container, queue
    queue.close()


def _run_nowait_then_continue(
    hello_rie: tuple[RieContainer, CapturedInvocations], start_event: dict[str, Any]
) -> dict[str, Any]:
    """run-nowait, check nothing ran it, invoke its captured continue, return the handler."""
    container, captured = hello_rie
    status, started = answer(
        container.invoke(
            v2(
                "POST",
                "/deployments/hello/workflows/greet/run-nowait",
                {"start_event": start_event},
            )
        )
    )
    assert status == 200
    handler_id = started["handler_id"]
    index = captured.next_continue(handler_id)
    status, _ = answer(container.invoke(v2("GET", f"/deployments/hello/handlers/{handler_id}")))
    assert status == 202  # nothing ran it: the continue is still in "the queue"
    outcome = container.invoke(captured.events[index]).result()
    assert outcome["handler_id"] == handler_id
    status, done = answer(container.invoke(v2("GET", f"/deployments/hello/handlers/{handler_id}")))
    assert status == 200
    return done  # type: ignore[no-any-return]


def test_v2_events_invoke_the_handler_in_a_real_runtime_loop(
    hello_rie: tuple[RieContainer, CapturedInvocations],
) -> None:
    container, _ = hello_rie
    status, listed = answer(container.invoke(v2("GET", "/deployments/hello/workflows")))
    assert status == 200 and listed["workflows"] == ["greet"]
    status, ran = answer(
        container.invoke(
            v2("POST", "/deployments/hello/workflows/greet/run", {"start_event": {"name": "Ada"}})
        )
    )
    assert status == 200 and ran["result"]["value"] == {"result": "Hello, Ada!"}


def test_run_nowait_is_driven_only_by_its_continue_invocation(
    hello_rie: tuple[RieContainer, CapturedInvocations],
) -> None:
    envelope = {"type": "StartEvent", "value": {"name": "Ada"}}
    done = _run_nowait_then_continue(hello_rie, envelope)
    assert done["result"]["value"] == {"result": "Hello, Ada!"}


def test_run_nowait_keeps_a_plain_start_event_across_the_hand_off(
    hello_rie: tuple[RieContainer, CapturedInvocations],
) -> None:
    done = _run_nowait_then_continue(hello_rie, {"name": "Ada"})
    assert done["result"]["value"] == {"result": "Hello, Ada!"}


TICKER_APP = {
    "pyproject.toml": """
        [project]
        name = "ticker"
        version = "0.1.0"
        requires-python = ">=3.11"

        [tool.llamadeploy]
        name = "ticker"

        [tool.llamadeploy.workflows]
        tick = "ticker.workflows:tick"
    """,
    "src/ticker/__init__.py": "",
    "src/ticker/workflows.py": '''
        """Appends a line to $TICKER_FILE every 50 ms until it holds 100 lines."""
        import asyncio, os
        from workflows import Workflow, step
        from workflows.events import StartEvent, StopEvent

        class Tick(Workflow):
            @step
            async def tick(self, ev: StartEvent) -> StopEvent:
                path = os.environ["TICKER_FILE"]
                while True:
                    with open(path, "a+") as file:
                        file.seek(0)
                        if len(file.readlines()) >= 100:
                            break
                        file.write("tick\\n")
                    await asyncio.sleep(0.05)
                return StopEvent(result="done")

        tick = Tick(timeout=None)
    ''',
}


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _stays(path: Path, seconds: float) -> int:
    """The line count of ``path``, checked unchanged for ``seconds`` (polled)."""
    before = _lines(path)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert _lines(path) == before, "the run advanced between invocations"
        time.sleep(0.02)
    return before


def test_nothing_of_a_run_executes_between_invocations(
    moto_server: MotoServer, captured: CapturedInvocations, tmp_path: Path
) -> None:
    app_dir = tmp_path / "ticker"
    for name, text in TICKER_APP.items():
        (app_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (app_dir / name).write_text(textwrap.dedent(text))
    ticks = tmp_path / "ticks.txt"
    container = container_for(app_dir, moto_server, captured, tmp_path / "rie.log", timeout=4)
    container.env = {**container.env, "TICKER_FILE": str(ticks)}
    with container:
        status, started = answer(
            container.invoke(v2("POST", "/deployments/ticker/workflows/tick/run-nowait", {}))
        )
        assert status == 200
        handler_id = started["handler_id"]
        index = captured.next_continue(handler_id)
        assert _stays(ticks, 0.5) == 0  # run-nowait only recorded the run
        rounds = 0
        while True:
            rounds += 1
            assert rounds <= 5, f"not done after 5 invocations: {_lines(ticks)} lines"
            before = _lines(ticks)
            invocation = container.invoke(captured.events[index])
            assert invocation.function_error is None, invocation.text
            after = _stays(ticks, 0.5)  # frozen: the file does not grow after the return
            assert after > before
            if after >= 100:
                break
            index = captured.next_continue(handler_id, index + 1)
        assert rounds >= 2  # 5 s of ticking does not fit one 4 s invocation
        status, done = answer(
            container.invoke(v2("GET", f"/deployments/ticker/handlers/{handler_id}"))
        )
    assert status == 200 and done["result"]["value"] == {"result": "done"}
    assert _lines(ticks) == 100
