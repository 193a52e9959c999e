"""Wait tokens through the real Lambda handler: ``llamaws serve --lambda`` (RIE + awslambdaric).

examples/hitl's ``approval`` is approved, rejected and left to time out with ``llamaws
tokens`` against the emulated function URL; the deadline is enforced by the
scheduled ``sweep`` invocation (every second here). The official client streams a
run whose token is announced.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import pytest
from llama_agents.client import WorkflowClient
from typer.testing import CliRunner

from llamaws.cli.main import app as cli

from .engines import MotoServer
from .support import EXAMPLES, Emulator, free_port, wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

APPROVE = '{"type": "Approved", "value": {"approver": "ada"}}'


@pytest.fixture(scope="module")
def hitl(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> Iterator[Emulator]:
    app_dir = tmp_path_factory.mktemp("rie") / "hitl"
    shutil.copytree(EXAMPLES / "hitl", app_dir, ignore=shutil.ignore_patterns("workflows.db*"))
    args = [
        "--lambda", "--lambda-containers", "2", "--lambda-timeout", "5",
        "--sweep-interval", "1",
        "--persistence", "dynamodb", "--dynamodb-endpoint", moto_server.endpoint,
        "--dynamodb-table", f"llamaws-waits-{uuid.uuid4().hex[:10]}",
    ]  # fmt: skip
    emulator = Emulator(app_dir, free_port(), args).start(wait=False)

    def ready() -> bool:
        assert emulator.process is not None and emulator.process.poll() is None, emulator.logs()
        return httpx.get(f"{emulator.url}/health", timeout=10).status_code == 200

    wait_until(ready, timeout=60, interval=0.1, what="llamaws serve --lambda to answer")
    yield emulator
    emulator.stop()


def tokens(emulator: Emulator, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["tokens", *args, "--url", emulator.url])
    return result.exit_code, result.stdout + result.stderr


def approval(emulator: Emulator, **start_event: Any) -> tuple[str, str]:
    """Start ``approval``; its handler id and the token of its wait."""
    handler_id = httpx.post(
        f"{emulator.url}/deployments/hitl/workflows/approval/run-nowait",
        json={"start_event": start_event},
        timeout=30,
    ).json()["handler_id"]

    def token() -> str | None:
        code, out = tokens(emulator, "list", handler_id)
        assert code == 0, out
        return out.split("\t")[0] if out.startswith("wt1.") else None

    return handler_id, wait_until(token, timeout=30, interval=0.2, what="the approval's token")


def result(emulator: Emulator, handler_id: str) -> str:
    def done() -> str | None:
        handler = httpx.get(
            f"{emulator.url}/deployments/hitl/handlers/{handler_id}", timeout=30
        ).json()
        return None if handler["status"] == "running" else str(handler["result"]["value"]["result"])

    return wait_until(done, timeout=30, interval=0.2, what=f"handler {handler_id} to finish")


def test_approve_reject_and_timeout_through_the_lambda_handler(hitl: Emulator) -> None:
    approved, approve_token = approval(hitl)
    rejected, reject_token = approval(hitl)
    late, late_token = approval(hitl, timeout_seconds=1)
    assert tokens(hitl, "success", approve_token, "--event-json", APPROVE)[0] == 0
    code, out = tokens(hitl, "failure", reject_token, "--error", "Rejected", "--cause", "no")
    assert code == 0, out
    assert result(hitl, approved) == "Approved by ada"
    assert result(hitl, rejected) == "Not approved: Rejected: no"
    assert result(hitl, late).startswith("Not approved in time: not completed within 1 s")
    code, out = tokens(hitl, "success", late_token, "--event-json", APPROVE)
    assert code == 1 and "(TaskTimedOut)" in out
    code, out = tokens(hitl, "success", approve_token, "--event-json", APPROVE)
    assert code == 1 and "(TaskAlreadyCompleted)" in out


async def test_the_official_client_streams_a_run_with_a_token(hitl: Emulator) -> None:
    client = WorkflowClient(base_url=f"{hitl.url}/deployments/hitl")
    started = await client.run_workflow_nowait("ask", start_event={"prompt": "Colour?"})
    seen: list[str] = []
    last: int | Literal["now"] = -1
    while "PromptEvent" not in seen:  # bounded streams: resume from the last id
        stream = client.get_workflow_events(started.handler_id, after_sequence=last)
        async for event in stream:
            seen.append(event.type)
        last = stream.last_sequence
    assert seen.index("WaitTokenIssued") < seen.index("PromptEvent")
    sent = await client.send_event(
        started.handler_id, {"type": "HumanResponseEvent", "value": {"response": "red"}}
    )
    assert sent.status == "sent"
    assert result(hitl, started.handler_id) == "You said: red"
