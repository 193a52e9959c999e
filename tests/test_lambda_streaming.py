"""Response streaming: the streaming runtime loop and the Function URL in RESPONSE_STREAM mode.

- **The loop against a local Runtime API** (``local/runtime_api.py``, the only offline
  view of chunk timing): a :class:`LoopContainer` runs ``exec_wrapper`` → the streaming
  runtime loop on the progress app (``tests/progress_app.py``), state on the moto
  server, its asynchronous invocations captured and run by hand.
- **The protocol alone**: ``tests/lambda_stream_runtime.py`` answers with the loop's
  :class:`StreamedResponse` and nothing else (a mid-stream error, timed chunks), behind
  the emulator's Function URL.
- **The RIE**: AWS's own Runtime API implementation accepts the streamed format.
- **``llamaws serve --lambda``** (streaming, the default): the official Python and
  TypeScript clients see a HITL prompt live, a response over 6 MB gets through.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.client import WorkflowClient

from llamaws.local.lambda_events import http_event
from llamaws.local.lambda_mode import ContainerPool, LambdaFrontend, LambdaService, LambdaSettings
from llamaws.local.rie import RieContainer
from llamaws.local.runtime_api import LoopContainer, Piece, exec_wrapper

from .engines import MotoServer
from .lambda_capture import CapturedInvocations
from .progress_app import write_progress_app
from .support import ROOT, Emulator, free_port, wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

BASE = "/deployments/progress"
FUNCTION_TIMEOUT = 6
"""Seconds: a stream of a waiting run ends ~4.8 s in (the budget: timeout less 20 %)."""
HEARTBEAT = 0.4
SEVEN_MB = 7 * 1024 * 1024
STUB_RUNTIME = [sys.executable, "-m", "tests.lambda_stream_runtime"]
TS_CLIENT_DIR = Path(__file__).parent / "ts-client"


# -- the loop against the local Runtime API ------------------------------------------------


@dataclass
class Function:
    """The progress app behind the streaming loop, invoked with hand-made URL events."""

    container: LoopContainer
    captured: CapturedInvocations
    key: str
    table: str
    endpoint: str

    def open(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: str = "",
        headers: tuple[tuple[str, str], ...] = (),
        key: bool = True,
    ) -> Any:
        content = json.dumps(body).encode() if body is not None else b""
        sent = [("host", "abc.lambda-url.us-east-1.on.aws"), ("content-type", "application/json")]
        if key:
            sent.append(("authorization", f"Bearer {self.key}"))
        return self.container.open(http_event(method, path, query, [*sent, *headers], content))

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> list[Piece]:
        return self.open(method, path, body, **kwargs).collect()  # type: ignore[no-any-return]

    def waiting_run(self) -> tuple[str, str]:
        """An ``asks`` run that published its question and waits: handler and run ids."""
        pieces = self.call(
            "POST", f"{BASE}/workflows/asks/run-nowait", {"start_event": {"delay": 0}}
        )
        started = json.loads(body_of(pieces))
        # Its continue invocation is an internal event: answered whole, as before.
        outcome = self.container.invoke(self.captured.take(started["handler_id"])).result()
        assert outcome == {"handler_id": started["handler_id"], "outcome": "idle"}
        return started["handler_id"], started["run_id"]


def body_of(pieces: list[Piece]) -> bytes:
    assert pieces[0].kind == "head" and pieces[-1].kind == "end", pieces
    assert pieces[-1].error_type is None, pieces[-1]
    return b"".join(piece.data for piece in pieces if piece.kind == "chunk")


def _create_key(endpoint: str, table: str) -> str:
    from llamaws.adapter.keys import KeyStore
    from llamaws.adapter.store.client import TableClient
    from llamaws.adapter.store.table import create_table

    client = TableClient(table, endpoint_url=endpoint, region_name="us-east-1")
    create_table(client.client, table)
    return asyncio.run(KeyStore(client).create("streaming")).key


@pytest.fixture(scope="module")
def function(
    moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Function]:
    app = write_progress_app(tmp_path_factory.mktemp("streaming"))
    table = f"llamaws-stream-{uuid.uuid4().hex[:10]}"
    captured = CapturedInvocations()
    env = {
        "LLAMAWS_APP_DIR": str(app),
        "LLAMAWS_TABLE": table,
        "LLAMAWS_CREATE_TABLE": "1",
        "LLAMAWS_S3_BUCKET": f"{table}-spill",
        "AWS_ENDPOINT_URL_DYNAMODB": moto_server.endpoint,
        "AWS_ENDPOINT_URL_S3": moto_server.endpoint,
        "LLAMAWS_ASYNC_INVOKE_URL": captured.url,
        "LLAMAWS_AUTH": "key",
        "LLAMAWS_HEARTBEAT_SECONDS": str(HEARTBEAT),
    }
    key = _create_key(moto_server.endpoint, table)
    log = (app / "function.log").open("wb")
    with LoopContainer(env=env, cwd=app, timeout=FUNCTION_TIMEOUT, log=log) as container:
        yield Function(container, captured, key, table, moto_server.endpoint)
    captured.close()
    log.close()


def test_event_stream_chunks_reach_the_runtime_api_as_they_are_produced(
    function: Function,
) -> None:
    handler_id, _ = function.waiting_run()
    pieces = function.call("GET", f"{BASE}/events/{handler_id}", query="after_sequence=-1")
    chunks = [piece for piece in pieces if piece.kind == "chunk"]
    assert pieces[0].prelude is not None and pieces[0].prelude["statusCode"] == 200
    assert pieces[0].prelude["headers"]["content-type"].startswith("text/event-stream")
    question = next(piece for piece in chunks if b'"type":"Question"' in piece.data)
    heartbeats = [piece for piece in chunks if piece.data == b": heartbeat\n\n"]
    # The run waits: after its events only heartbeats, then the stream ends within the
    # invocation's budget with a retry hint (the client resumes from the last id).
    assert chunks[-1].data == b"retry: 200\n\n" and pieces[-1].error_type is None
    assert pieces[-1].at - pieces[0].at < FUNCTION_TIMEOUT
    # Each chunk left when it was produced: the question at once, the heartbeats one by
    # one afterwards (a buffered answer would arrive all at the end).
    assert len(heartbeats) >= 3
    assert pieces[-1].at - question.at >= 3 * HEARTBEAT
    assert [p.at for p in heartbeats] == sorted(p.at for p in heartbeats)
    assert heartbeats[-1].at - heartbeats[0].at >= (len(heartbeats) - 2) * HEARTBEAT


def test_prelude_carries_status_headers_and_the_sign_in_cookie(function: Function) -> None:
    refused = function.call("GET", f"{BASE}/workflows", key=False)
    assert refused[0].prelude is not None and refused[0].prelude["statusCode"] == 401
    assert refused[0].prelude["headers"]["www-authenticate"].startswith("Bearer")

    signed_in = function.call("POST", f"{BASE}/auth", {"key": function.key}, key=False)
    prelude = signed_in[0].prelude
    assert prelude is not None and prelude["statusCode"] == 200
    assert prelude["headers"]["content-type"] == "application/json"
    # The cookie goes to the prelude's cookies (a Function URL sets each one); no
    # length header: Lambda frames the stream.
    assert "set-cookie" not in prelude["headers"] and "content-length" not in prelude["headers"]
    (cookie,) = prelude["cookies"]
    assert cookie.startswith("llamaws_session=") and "HttpOnly" in cookie
    assert f"Path={BASE}" in cookie and "SameSite=Strict" in cookie
    assert json.loads(body_of(signed_in))["key_id"]

    session = cookie.split(";", 1)[0]
    listed = function.call("GET", f"{BASE}/workflows", headers=(("cookie", session),), key=False)
    assert sorted(json.loads(body_of(listed))["workflows"]) == ["asks", "big", "ticks"]


def test_a_seven_megabyte_response_streams_whole(function: Function) -> None:
    pieces = function.call("POST", f"{BASE}/workflows/big/run", {"start_event": {"size": SEVEN_MB}})
    assert pieces[0].prelude is not None and pieces[0].prelude["statusCode"] == 200
    ran = json.loads(body_of(pieces))  # over Lambda's 6 MB buffered limit, in one piece
    assert ran["status"] == "completed" and ran["result"]["value"]["result"] == "x" * SEVEN_MB


def test_error_before_the_first_byte_is_a_function_error(tmp_path: Path) -> None:
    # No LLAMAWS_TABLE: the container cannot be built, nothing was sent yet.
    with LoopContainer(env={"LLAMAWS_TABLE": ""}, cwd=tmp_path, timeout=30) as container:
        pieces = container.open(http_event("GET", f"{BASE}/workflows", "", [], b"")).collect()
    (error,) = pieces
    assert error.kind == "error" and error.error_type == "ConfigError"
    assert "LLAMAWS_TABLE is not set" in json.loads(error.data)["errorMessage"]


# -- the protocol alone, behind the emulator's Function URL ---------------------------------


def test_error_after_the_first_byte_ends_the_stream_with_error_trailers(tmp_path: Path) -> None:
    with LoopContainer(cwd=ROOT, timeout=10, command=STUB_RUNTIME) as container:
        pieces = container.open(http_event("GET", "/fail", "", [], b"")).collect()
    assert [piece.kind for piece in pieces] == ["head", "chunk", "end"]
    assert pieces[1].data == b"partial"
    assert pieces[-1].error_type == "RuntimeError"
    assert json.loads(pieces[-1].data)["errorMessage"] == "boom after the first byte"


@pytest.fixture
def stub_url(tmp_path: Path) -> Iterator[str]:
    """The emulator's Function URL (streaming) in front of the stub runtime."""
    import uvicorn

    settings = LambdaSettings(
        app_dir=tmp_path, table="unused", dynamodb_endpoint="http://127.0.0.1:9", streaming=True
    )
    service = LambdaService(settings)
    service.pool = ContainerPool(
        lambda: LoopContainer(cwd=ROOT, timeout=10, command=STUB_RUNTIME, die_with_parent=True), 1
    )
    port = free_port()
    config = uvicorn.Config(
        LambdaFrontend(service), host="127.0.0.1", port=port, log_level="error", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=10, what="the emulated function URL")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    service.pool.close()


def test_the_url_cuts_the_response_after_a_mid_stream_error(stub_url: str) -> None:
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", f"{stub_url}/fail", timeout=10) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += chunk
    assert received == b"partial"


def test_chunks_reach_the_client_as_they_come(stub_url: str) -> None:
    arrivals: list[tuple[float, str]] = []
    with httpx.stream("GET", f"{stub_url}/chunks?n=4&gap=0.4", timeout=10) as response:
        assert response.headers["content-type"] == "text/plain"
        for line in response.iter_lines():
            arrivals.append((time.monotonic(), line))
    assert [line for _, line in arrivals] == [f"chunk {i}" for i in range(4)]
    assert arrivals[-1][0] - arrivals[0][0] >= 3 * 0.4 * 0.8  # not all at once at the end


# -- the RIE ---------------------------------------------------------------------------------


def test_the_rie_accepts_the_streamed_format(function: Function, tmp_path: Path) -> None:
    # The RIE (aws-sam-cli's Runtime API) takes the loop's streamed answer and hands it
    # over buffered, raw: prelude, 8 NUL bytes, body.
    env = {**function.container.env, "LLAMAWS_CREATE_TABLE": "0"}
    wrapper = ["/bin/sh", str(exec_wrapper()), sys.executable, "/var/runtime/bootstrap.py"]
    log = (tmp_path / "rie.log").open("wb")
    with RieContainer("unused", env=env, cwd=ROOT, timeout=30, log=log, command=wrapper) as rie:
        headers = [("authorization", f"Bearer {function.key}")]
        answer = rie.invoke(http_event("GET", f"{BASE}/workflows", "", headers, b""))
    log.close()
    head, delimiter, content = answer.body.partition(b"\x00" * 8)
    assert delimiter and json.loads(head) == {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "vary": "Origin"},
        "cookies": [],
    }
    assert sorted(json.loads(content)["workflows"]) == ["asks", "big", "ticks"]


# -- llamaws serve --lambda, streaming ------------------------------------------------------


@pytest.fixture(scope="module")
def served(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    app = write_progress_app(tmp_path_factory.mktemp("served"))
    args = [
        "--lambda", "--lambda-containers", "3", "--lambda-timeout", "30",
        "--sweep-interval", "0", "--persistence", "dynamodb",
        "--dynamodb-endpoint", moto_server.endpoint,
        "--dynamodb-table", f"llamaws-served-{uuid.uuid4().hex[:10]}",
        "--s3-bucket", "llamaws-served-spill",
    ]  # fmt: skip
    emulator = Emulator(app, free_port(), args, env={"LLAMAWS_AUTH": "none"})
    emulator.start(wait=False)

    def ready() -> bool:
        assert emulator.process is not None and emulator.process.poll() is None, emulator.logs()
        return httpx.get(f"{emulator.url}/health", timeout=30).status_code == 200

    wait_until(ready, timeout=90, interval=0.2, what="llamaws serve --lambda to answer")
    yield emulator
    emulator.stop()


async def test_official_python_client_receives_a_hitl_prompt_live(served: Emulator) -> None:
    client = WorkflowClient(base_url=f"{served.url}{BASE}")
    started = await client.run_workflow_nowait("asks", start_event={"delay": 1.5})
    opened = time.time()
    stream = client.get_workflow_events(started.handler_id)
    seen: list[str] = []
    question: dict[str, Any] = {}
    async for event in stream:  # one stream: this client does not resume an ended one
        seen.append(event.type)
        if event.type == "Question":
            question = {**event.value, "received_at": time.time()}
            await client.send_event(
                started.handler_id, {"type": "HumanResponseEvent", "value": {"response": "blue"}}
            )
        if event.type == "StopEvent":
            assert event.value == {"result": "You said: blue"}
            break
    assert [t for t in seen if t in ("Progress", "Question", "StopEvent")] == [
        "Progress", "Question", "StopEvent",
    ]  # fmt: skip
    # Published 1.5 s after the run started, well after the stream opened: it came live.
    assert question["prompt"] == "Colour?" and question["published_at"] > opened
    assert question["received_at"] >= question["published_at"]


@pytest.mark.skipif(
    not (TS_CLIENT_DIR / "node_modules" / "@llamaindex" / "workflows-client").is_dir()
    or shutil.which("node") is None,
    reason="tests/ts-client/node_modules is missing: run .ci/install-ui-deps.sh",
)
def test_official_ts_client_receives_a_hitl_prompt_live(served: Emulator) -> None:
    done = subprocess.run(
        ["node", str(TS_CLIENT_DIR / "live.mjs"), f"{served.url}{BASE}"],
        capture_output=True, text=True, timeout=60, cwd=TS_CLIENT_DIR, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stderr}\n{served.logs()[-3000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errors"] == []  # one stream, never reconnected
    assert report["seen"][0] == "Progress" and report["seen"][-1] == "StopEvent"
    assert report["question"]["prompt"] == "Colour?"
    assert report["question"]["publishedAt"] > report["openedAt"]
    assert report["final"] == {"result": "You said: blue"}


def test_a_response_over_six_megabytes_reaches_the_client(served: Emulator) -> None:
    response = httpx.post(
        f"{served.url}{BASE}/workflows/big/run",
        json={"start_event": {"size": SEVEN_MB}},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:500]
    assert len(response.content) > SEVEN_MB
    assert response.json()["result"]["value"]["result"] == "x" * SEVEN_MB
