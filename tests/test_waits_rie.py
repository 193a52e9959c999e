"""Wait tokens through the real Lambda handler: ``llamaws serve --lambda`` (RIE + awslambdaric).

examples/hitl's ``approval`` is approved, rejected and left to time out with ``llamaws
tokens`` against the emulated function URL; the deadline is enforced by the
scheduled ``sweep`` invocation (every second here). The API keeps its default auth
(an API key): the token routes need none, listing a handler's waits does. The
official client streams a run whose token is announced.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass
class Deployed:
    """``serve --lambda`` of examples/hitl and an API key of its deployment."""

    emulator: Emulator
    key: str

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def hitl(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> Iterator[Deployed]:
    app_dir = tmp_path_factory.mktemp("rie") / "hitl"
    shutil.copytree(EXAMPLES / "hitl", app_dir, ignore=shutil.ignore_patterns("workflows.db*"))
    table = f"llamaws-waits-{uuid.uuid4().hex[:10]}"
    args = [
        "--lambda", "--lambda-containers", "2", "--lambda-timeout", "5",
        "--sweep-interval", "1",
        "--persistence", "dynamodb", "--dynamodb-endpoint", moto_server.endpoint,
        "--dynamodb-table", table,
    ]  # fmt: skip
    emulator = Emulator(app_dir, free_port(), args).start(wait=False)

    def ready() -> bool:
        assert emulator.process is not None and emulator.process.poll() is None, emulator.logs()
        return httpx.get(f"{emulator.url}/health", timeout=10).status_code == 200

    wait_until(ready, timeout=60, interval=0.1, what="llamaws serve --lambda to answer")
    created = CliRunner().invoke(
        cli,
        ["keys", "create", str(app_dir), "--endpoint-url", moto_server.endpoint, "--table", table],
    )
    assert created.exit_code == 0, created.stdout + created.stderr
    yield Deployed(emulator, created.stdout.strip())
    emulator.stop()


def tokens(deployed: Deployed, *args: str, key: bool = False) -> tuple[int, str]:
    """``llamaws tokens ARGS --url …`` (with ``--api-key`` when ``key``)."""
    extra = ["--api-key", deployed.key] if key else []
    url = f"{deployed.url}/deployments/hitl"
    result = CliRunner().invoke(cli, ["tokens", *args, "--url", url, *extra])
    return result.exit_code, result.stdout + result.stderr


def approval(deployed: Deployed, **start_event: Any) -> tuple[str, str]:
    """Start ``approval``; its handler id and the token of its wait."""
    handler_id = httpx.post(
        f"{deployed.url}/deployments/hitl/workflows/approval/run-nowait",
        json={"start_event": start_event},
        headers=deployed.headers,
        timeout=30,
    ).json()["handler_id"]

    def token() -> str | None:
        code, out = tokens(deployed, "list", handler_id, key=True)
        assert code == 0, out
        return out.split("\t")[0] if out.startswith("wt1.") else None

    return handler_id, wait_until(token, timeout=30, interval=0.2, what="the approval's token")


def result(deployed: Deployed, handler_id: str) -> str:
    def done() -> str | None:
        handler = httpx.get(
            f"{deployed.url}/deployments/hitl/handlers/{handler_id}",
            headers=deployed.headers,
            timeout=30,
        ).json()
        return None if handler["status"] == "running" else str(handler["result"]["value"]["result"])

    return wait_until(done, timeout=30, interval=0.2, what=f"handler {handler_id} to finish")


def test_approve_reject_and_timeout_through_the_lambda_handler(hitl: Deployed) -> None:
    approved, approve_token = approval(hitl)
    rejected, reject_token = approval(hitl)
    late, late_token = approval(hitl, timeout_seconds=3)
    assert tokens(hitl, "success", approve_token, "--event-json", APPROVE)[0] == 0
    code, out = tokens(hitl, "failure", reject_token, "--error", "Rejected", "--cause", "no")
    assert code == 0, out
    assert result(hitl, approved) == "Approved by ada"
    assert result(hitl, rejected) == "Not approved: Rejected: no"
    assert result(hitl, late).startswith("Not approved in time: not completed within 3 s")
    code, out = tokens(hitl, "success", late_token, "--event-json", APPROVE)
    assert code == 1 and "(TaskTimedOut)" in out
    code, out = tokens(hitl, "success", approve_token, "--event-json", APPROVE)
    assert code == 1 and "(TaskAlreadyCompleted)" in out


def test_the_token_routes_need_no_key_the_handlers_waits_do(hitl: Deployed) -> None:
    handler_id, token = approval(hitl)
    code, out = tokens(hitl, "list", handler_id)  # no --api-key
    assert code == 1 and "Not authenticated" in out
    code, out = tokens(hitl, "describe", token)
    assert code == 0 and '"status": "open"' in out


async def test_the_official_client_streams_a_run_with_a_token(hitl: Deployed) -> None:
    client = WorkflowClient(
        httpx_client=httpx.AsyncClient(
            base_url=f"{hitl.url}/deployments/hitl", headers=hitl.headers, timeout=30
        )
    )
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
