"""The Lambda handler's costs (a script: prints figures, asserts nothing).

    uv run python -m bench.lambda [--repeat 5] [--runs 100] [--resumes 5]

- **P1 cold start**: a fresh interpreter that imports ``llamaws.adapter.handler`` and
  serves its first request (an API Gateway v2 event for
  ``GET /deployments/hello/workflows`` with an API key, ``auth = "key"``: the key's
  first lookup included; the table on a moto server) against a
  fresh interpreter that only imports the dependencies
  (``llama_agents.server, mangum, boto3, starlette``). Wall time of each process,
  median of ``--repeat``; goal: ratio <= 1.25. The same with ``auth = "none"`` shows
  what auth adds to a cold start. Then the same first request through each runtime
  loop, from the invocation to the whole answer: ``awslambdaric`` under the RIE
  (buffered) and the streaming runtime loop (``exec_wrapper``) under the local Runtime
  API, a fresh container each time.
- **P2 warm throughput**: ``POST …/workflows/greet/run`` (with the API key) as in-process calls of
  ``handler(event, context)`` (a fake context with ``get_remaining_time_in_millis``)
  against the same app on uvicorn (``llamaws serve`` on the same DynamoDB engine)
  over HTTP; sequential runs per second and their ratio.
- **P4 HITL resume**: a run released while waiting for an answer, with a short
  and a ~100-tick history: ``POST /events/<id>`` → the captured ``continue``
  invocation → ``GET /handlers/<id>`` says completed; median latency.

A moto server is started here (loopback, free port); asynchronous invocations go
to a local endpoint that records them, and the benchmark invokes them itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from llamaws.local.engine import start_local_engine
from llamaws.local.lambda_events import http_event, http_response
from tests.lambda_capture import CapturedInvocations
from tests.support import free_port, wait_until

__all__ = ["main"]

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
DEPENDENCIES = "import llama_agents.server, mangum, boto3, starlette"
AWS_DUMMY = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}

LOOP_STEPS = (0, 10, 25, 33, 50)
"""Loop lengths of the P4 workflows (``loop<n>``): the history before the wait.

Fixed per workflow, not taken from the start event (see the note in ``bench_resume``)."""

LOOP_APP = {
    "pyproject.toml": """
        [project]
        name = "resume"
        version = "0.1.0"
        requires-python = ">=3.11"

        [tool.llamadeploy]
        name = "resume"

        [tool.llamadeploy.workflows]
    """
    + "".join(f'        loop{n} = "resume.workflows:loop{n}"\n' for n in LOOP_STEPS),
    "src/resume/__init__.py": "",
    "src/resume/workflows.py": '''
        """Loops ``steps`` times (history), then waits for an answer."""
        from typing import Any
        from workflows import Workflow, step
        from workflows.events import (
            Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent,
        )

        class Again(Event):
            left: int

        class Question(InputRequiredEvent):
            prompt: str

        class Loop(Workflow):
            def __init__(self, steps: int, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.steps = steps

            @step
            async def begin(self, ev: StartEvent) -> Again | Question:
                return Again(left=self.steps) if self.steps > 0 else Question(prompt="?")

            @step
            async def again(self, ev: Again) -> Again | Question:
                return Again(left=ev.left - 1) if ev.left > 1 else Question(prompt="?")

            @step
            async def answer(self, ev: HumanResponseEvent) -> StopEvent:
                return StopEvent(result=ev.response)
    '''
    + "".join(f"\n        loop{n} = Loop({n}, timeout=None)" for n in LOOP_STEPS)
    + "\n",
}


# -- engines and helpers ----------------------------------------------------------------


@contextmanager
def moto_server() -> Iterator[str]:
    engine = start_local_engine()
    try:
        yield engine.endpoint
    finally:
        engine.stop()


class Context:
    """Lambda's context object, as far as the handler uses it."""

    function_name = "bench"
    aws_request_id = "bench"

    def __init__(self, seconds: float = 60.0) -> None:
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.deadline - time.monotonic()) * 1000), 0)


def v2(method: str, path: str, body: Any = None, key: str | None = None) -> dict[str, Any]:
    content = json.dumps(body).encode() if body is not None else b""
    headers = [("content-type", "application/json")]
    if key is not None:
        headers.append(("authorization", f"Bearer {key}"))
    return http_event(method, path, "", headers, content)


def create_key(endpoint: str, table: str) -> str:
    """The table (when missing) and an API key in it: what ``llamaws keys create`` does."""
    import asyncio

    from llamaws.adapter.keys import KeyStore
    from llamaws.adapter.store.client import TableClient
    from llamaws.adapter.store.table import create_table

    for name, value in AWS_DUMMY.items():
        os.environ.setdefault(name, value)
    client = TableClient(table, endpoint_url=endpoint, region_name="us-east-1")
    create_table(client.client, table)
    return asyncio.run(KeyStore(client).create("bench")).key


def _write_app(target: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(textwrap.dedent(text))
    return target


def function_env(
    app_dir: Path, endpoint: str, table: str, invoke_url: str, auth: str = "key"
) -> dict[str, str]:
    return {
        **AWS_DUMMY,
        "LLAMAWS_AUTH": auth,
        "LLAMAWS_APP_DIR": str(app_dir),
        "LLAMAWS_TABLE": table,
        "LLAMAWS_CREATE_TABLE": "1",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "LLAMAWS_ASYNC_INVOKE_URL": invoke_url,
    }


# -- P1 ---------------------------------------------------------------------------------

COLD_CHILD = """
import json, time
t0 = time.perf_counter()
from llamaws.adapter.handler import handler
from llamaws.local.lambda_events import http_event, http_response
t1 = time.perf_counter()
class Ctx:
    def get_remaining_time_in_millis(self): return 60000
import os
key = os.environ.get("BENCH_KEY")
headers = [("authorization", f"Bearer {key}")] if key else []
event = http_event("GET", "/deployments/hello/workflows", "", headers, b"")
status, _, body = http_response(handler(event, Ctx()))
t2 = time.perf_counter()
assert status == 200 and json.loads(body)["workflows"] == ["greet"], body
print(json.dumps({"import": t1 - t0, "first_request": t2 - t1}))
"""


def _process_seconds(code: str, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return elapsed, done.stdout


def bench_cold_start(
    endpoint: str, hello: Path, captured: CapturedInvocations, repeat: int
) -> None:
    table = f"bench-cold-{uuid.uuid4().hex[:8]}"
    env = {
        **function_env(hello, endpoint, table, captured.url),
        "BENCH_KEY": create_key(endpoint, table),
    }
    open_env = function_env(hello, endpoint, table, captured.url, auth="none")
    _process_seconds(COLD_CHILD, env)  # warms the OS file cache
    _process_seconds(DEPENDENCIES, env)
    bare: list[float] = []
    full: list[float] = []
    opened: list[float] = []
    parts: list[dict[str, float]] = []
    for _ in range(repeat):
        bare.append(_process_seconds(DEPENDENCIES, env)[0])
        seconds, out = _process_seconds(COLD_CHILD, env)
        full.append(seconds)
        parts.append(json.loads(out))
        opened.append(_process_seconds(COLD_CHILD, open_env)[0])
    b, f, o = statistics.median(bare), statistics.median(full), statistics.median(opened)
    imp = statistics.median(p["import"] for p in parts)
    first = statistics.median(p["first_request"] for p in parts)
    print(f"P1 cold start (fresh interpreter, wall time, median of {repeat})")
    print(f"   bare import of dependencies ({DEPENDENCIES[7:]}): {b * 1000:7.0f} ms")
    print(
        f"   import llamaws.adapter.handler + first request (v2 GET /workflows): {f * 1000:7.0f} ms"
    )
    print(f"     of which: import llamaws.adapter.handler {imp * 1000:.0f} ms (in-process), "
          f"first invocation {first * 1000:.0f} ms (container build + request)")  # fmt: skip
    print(f"   ratio: {f / b:.2f}  (goal <= 1.25)")
    print(f"   the same with auth = none (no key lookup): {o * 1000:7.0f} ms; "
          f"auth = key adds {(f - o) * 1000:+.0f} ms ({f / o:.2f}x)")  # fmt: skip
    _cold_start_per_runtime(hello, env, repeat)


def _cold_start_per_runtime(hello: Path, env: dict[str, str], repeat: int) -> None:
    """The first request through awslambdaric (RIE) and through the streaming loop."""
    from llamaws.local.rie import RieContainer
    from llamaws.local.runtime_api import LoopContainer

    event = v2("GET", "/deployments/hello/workflows", key=env["BENCH_KEY"])
    function_env = {k: v for k, v in env.items() if k != "BENCH_KEY"}
    timings: dict[str, list[float]] = {"awslambdaric (RIE)": [], "streaming loop": []}
    for _ in range(repeat):
        with RieContainer(
            "llamaws.adapter.handler.handler", env=function_env, cwd=ROOT, timeout=60,
            log=subprocess.DEVNULL,
        ) as rie:  # fmt: skip
            answer = rie.invoke(event)
            assert b"greet" in answer.body, answer.body[:300]
            timings["awslambdaric (RIE)"].append(answer.duration)
        with LoopContainer(env=function_env, cwd=ROOT, timeout=60, log=subprocess.DEVNULL) as loop:
            answer = loop.invoke(event)
            assert b"greet" in answer.body, answer.body[:300]
            timings["streaming loop"].append(answer.duration)
    rie_ms, loop_ms = (statistics.median(t) * 1000 for t in timings.values())
    print(f"   first request through the runtime loop (fresh container, median of {repeat}): "
          f"awslambdaric under the RIE {rie_ms:.0f} ms, streaming loop {loop_ms:.0f} ms "
          f"({loop_ms / rie_ms:.2f}x)")  # fmt: skip


# -- P2 ---------------------------------------------------------------------------------


def bench_warm(endpoint: str, hello: Path, captured: CapturedInvocations, runs: int) -> None:
    table = f"bench-warm-{uuid.uuid4().hex[:8]}"
    os.environ.update(function_env(hello, endpoint, table, captured.url))
    key = create_key(endpoint, table)
    from llamaws.adapter.handler import handler

    run = v2(
        "POST", "/deployments/hello/workflows/greet/run", {"start_event": {"name": "Ada"}}, key
    )

    def once() -> None:
        status, _, body = http_response(handler(run, Context()))  # type: ignore[arg-type]
        assert status == 200 and b"Hello, Ada!" in body, body

    for _ in range(5):
        once()
    started = time.perf_counter()
    for _ in range(runs):
        once()
    in_process = runs / (time.perf_counter() - started)

    port = free_port()
    serve_table = f"bench-uvicorn-{uuid.uuid4().hex[:8]}"
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed after the server stops
    server = subprocess.Popen(
        [sys.executable, "-m", "llamaws.cli.main", "serve", str(hello), "--port", str(port),
         "--no-reload", "--no-open-browser", "--no-install", "--log-level", "WARNING",
         "--persistence", "dynamodb", "--dynamodb-endpoint", endpoint,
         "--dynamodb-table", serve_table],
        cwd=ROOT, env={**os.environ, **AWS_DUMMY}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200)
        with httpx.Client(base_url=f"{url}/deployments/hello", timeout=30) as client:

            def over_http() -> None:
                response = client.post("/workflows/greet/run", json={"start_event": {"name": "A"}})
                assert response.status_code == 200, response.text

            for _ in range(5):
                over_http()
            started = time.perf_counter()
            for _ in range(runs):
                over_http()
            uvicorn_rate = runs / (time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
    print(f"P2 warm runs of greet (sequential, {runs} runs, DynamoDB on moto)")
    print(f"   handler(event, context) in-process: {in_process:7.1f} runs/s "
          f"({1000 / in_process:.1f} ms/run)")  # fmt: skip
    print(f"   llamaws serve (uvicorn) over HTTP:   {uvicorn_rate:7.1f} runs/s "
          f"({1000 / uvicorn_rate:.1f} ms/run)")  # fmt: skip
    print(f"   ratio handler/uvicorn: {in_process / uvicorn_rate:.2f}")


# -- P4 ---------------------------------------------------------------------------------


def bench_resume(endpoint: str, app_dir: Path, captured: CapturedInvocations, resumes: int) -> None:
    """Runs in this process on the container P2 built (same env), app: the loop app."""
    import asyncio

    from llamaws.adapter.handler import handler
    from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore

    table = os.environ["LLAMAWS_TABLE"]
    store = DynamoWorkflowStore(
        DynamoSettings(table_name=table, endpoint_url=endpoint, region_name="us-east-1")
    )
    base = "/deployments/resume"

    def call(event: dict[str, Any]) -> tuple[int, Any]:
        result = handler(event, Context())  # type: ignore[arg-type]
        if "statusCode" not in result:
            return 0, result
        status, _, body = http_response(result)
        return status, json.loads(body) if body else None

    def released_run(n: int) -> tuple[str, int]:
        status, started = call(v2("POST", f"{base}/workflows/loop{n}/run-nowait", {}))
        assert status == 200, started
        handler_id = started["handler_id"]
        for _ in range(20):  # continue until the run waits (released: idle)
            _, outcome = call(captured.take(handler_id))
            if outcome.get("outcome") == "idle":
                break
        else:
            raise RuntimeError(f"run {handler_id} never became idle")
        run_id = call(v2("GET", f"{base}/handlers/{handler_id}"))[1]["run_id"]
        ticks = len(asyncio.run(store.get_ticks(run_id)))
        return handler_id, ticks

    def resume(handler_id: str) -> float:
        started = time.perf_counter()
        answer = {"event": {"type": "HumanResponseEvent", "value": {"response": "ok"}}}
        status, sent = call(v2("POST", f"{base}/events/{handler_id}", answer))
        assert status == 200, sent
        call(captured.take(handler_id))
        status, done = call(v2("GET", f"{base}/handlers/{handler_id}"))
        assert status == 200 and done["status"] == "completed", done
        return time.perf_counter() - started

    _, base_ticks = released_run(0)
    _, ten_ticks = released_run(10)
    per_step = max((ten_ticks - base_ticks) / 10, 0.1)
    long_n = min(LOOP_STEPS, key=lambda n: abs(base_ticks + n * per_step - 100))
    print(f"P4 HITL resume of a released run (POST /events → continue → completed), "
          f"median of {resumes}")  # fmt: skip
    for n in (0, long_n):
        latencies = []
        ticks = 0
        for _ in range(resumes):
            handler_id, ticks = released_run(n)
            latencies.append(resume(handler_id))
        print(f"   {ticks:4d} ticks of history: {statistics.median(latencies) * 1000:7.1f} ms "
              f"(min {min(latencies) * 1000:.1f}, max {max(latencies) * 1000:.1f})")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lambda")
    parser.add_argument("--repeat", type=int, default=5, help="P1 process pairs")
    parser.add_argument("--runs", type=int, default=100, help="P2 runs per side")
    parser.add_argument("--resumes", type=int, default=5, help="P4 resumes per history")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llamaws-bench-") as tmp, moto_server() as endpoint:
        hello = Path(tmp) / "hello"
        shutil.copytree(ROOT / "examples" / "hello", hello)
        loop_app = _write_app(Path(tmp) / "resume", LOOP_APP)
        captured = CapturedInvocations()
        bench_cold_start(endpoint, hello, captured, args.repeat)
        bench_warm(endpoint, hello, captured, args.runs)
        # P4 needs a container of the loop app: a fresh interpreter (one container each).
        _run_p4(endpoint, loop_app, args.resumes)
        captured.close()


def _run_p4(endpoint: str, loop_app: Path, resumes: int) -> None:
    """P4 in a child interpreter: its one container serves the loop app."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.lambda", "--p4-child", endpoint, str(loop_app), str(resumes)],
        cwd=ROOT,
        env={**os.environ, **AWS_DUMMY},
        check=False,
    )
    if done.returncode != 0:
        print(f"P4 failed (exit {done.returncode})")


def _p4_child(endpoint: str, loop_app: str, resumes: int) -> None:
    captured = CapturedInvocations()
    os.environ.update(
        function_env(
            Path(loop_app),
            endpoint,
            f"bench-resume-{uuid.uuid4().hex[:8]}",
            captured.url,
            auth="none",  # the resume path, not auth, is measured here
        )
    )
    bench_resume(endpoint, Path(loop_app), captured, resumes)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--p4-child":
        _p4_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
