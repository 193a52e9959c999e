"""``llamaws tokens`` against a real emulator of examples/hitl (SQLite), and a restart.

The commands run in this process (typer's runner) against the emulator's port, one
through the installed entry point; the ``approval`` workflow is approved, rejected
and left to time out, as the example's doc shows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.client import WorkflowClient
from typer.testing import CliRunner

from llamaws.cli.main import app as cli

from .support import ROOT, Emulator, free_port, wait_until
from .waits_support import seconds_until

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

APPROVE = '{"type": "Approved", "value": {"approver": "ada"}}'


@pytest.fixture(scope="module")
def hitl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    import shutil

    from .support import EXAMPLES

    app_dir = tmp_path_factory.mktemp("cli") / "hitl"
    shutil.copytree(EXAMPLES / "hitl", app_dir, ignore=shutil.ignore_patterns("workflows.db*"))
    emulator = Emulator(app_dir, free_port()).start()
    yield emulator
    emulator.stop()


def tokens(emulator: Emulator | None, *args: str) -> tuple[int, str, str]:
    """``llamaws tokens ARGS --url …``: (exit code, stdout, stderr)."""
    url = ["--url", emulator.url] if emulator is not None else []
    result = CliRunner().invoke(cli, ["tokens", *args, *url], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def approval(emulator: Emulator, **start_event: Any) -> str:
    response = httpx.post(
        f"{emulator.url}/deployments/hitl/workflows/approval/run-nowait",
        json={"start_event": start_event},
    )
    return str(response.json()["handler_id"])


def listed_token(emulator: Emulator, handler_id: str) -> list[str]:
    """The fields of the handler's one open wait, as ``tokens list`` prints them."""

    def listed() -> list[str] | None:
        code, out, _ = tokens(emulator, "list", handler_id)
        assert code == 0
        return out.strip().split("\t") if out.strip() else None

    return wait_until(listed, what=f"a wait of {handler_id}")


def result(emulator: Emulator, handler_id: str) -> str:
    def done() -> str | None:
        handler = httpx.get(f"{emulator.url}/deployments/hitl/handlers/{handler_id}").json()
        if handler["status"] == "running":
            return None
        return str(handler["result"]["value"]["result"])

    return wait_until(done, what=f"handler {handler_id} to finish")


def test_the_example_is_approved_with_tokens_success(hitl: Emulator) -> None:
    handler_id = approval(hitl, summary="Deploy v2")
    token, waiter, expects, expires, _ = listed_token(hitl, handler_id)
    assert (waiter, expects) == ("waiter=request", "expects=Approved")
    assert seconds_until(expires.removeprefix("expires=")) > 200  # 300 s by default
    code, out, _ = tokens(hitl, "success", token, "--event-json", APPROVE)
    assert (code, out.strip()) == (0, f"completed: wait 'request' of handler {handler_id}")
    assert result(hitl, handler_id) == "Approved by ada"
    code, _, err = tokens(hitl, "success", token, "--event-json", APPROVE)
    assert code == 1 and err.startswith("Error: ") and "(TaskAlreadyCompleted)" in err


def test_the_example_is_rejected_with_tokens_failure(hitl: Emulator) -> None:
    handler_id = approval(hitl)
    token = listed_token(hitl, handler_id)[0]
    code, out, _ = tokens(hitl, "failure", token, "--error", "Rejected", "--cause", "Friday")
    assert code == 0 and out.startswith("failed: wait 'request'") and "Rejected: Friday" in out
    assert result(hitl, handler_id) == "Not approved: Rejected: Friday"


def test_the_example_times_out_and_a_late_answer_is_refused(hitl: Emulator, tmp_path: Path) -> None:
    handler_id = approval(hitl, timeout_seconds=3)
    token = listed_token(hitl, handler_id)[0]
    assert result(hitl, handler_id).startswith("Not approved in time: not completed within 3 s")
    code, out, _ = tokens(hitl, "describe", token)
    assert code == 0 and json.loads(out)["status"] == "timed_out"
    event_file = tmp_path / "approved.json"
    event_file.write_text(APPROVE)
    code, _, err = tokens(hitl, "success", token, "--event-file", str(event_file))
    assert code == 1 and "(TaskTimedOut)" in err


def test_usage_errors_exit_2_and_an_unreachable_server_exits_1(hitl: Emulator) -> None:
    assert tokens(hitl, "success", "wt1.x.y")[0] == 2  # no event given
    code, _, err = tokens(hitl, "success", "wt1.x.y", "--event-json", "{nope")
    assert code == 2 and "--event-json is not JSON" in err
    code, _, err = tokens(hitl, "describe", "not-a-token")
    assert code == 1 and "(InvalidToken)" in err
    closed = f"http://127.0.0.1:{free_port()}"
    code, _, err = tokens(None, "list", "abc", "--url", closed)
    assert code == 1 and err.startswith(f"Error: cannot reach {closed}")


def test_the_installed_command_lists_waits_through_a_deployment_url(hitl: Emulator) -> None:
    handler_id = approval(hitl)
    listed_token(hitl, handler_id)
    done = subprocess.run(
        [sys.executable, "-m", "llamaws.cli.main", "tokens", "list", handler_id,
         "--url", f"{hitl.url}/deployments/hitl"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wt1.") and "waiter=request" in done.stdout
    code, out, _ = tokens(hitl, "list", handler_id, "--json")
    assert code == 0
    (wait,) = json.loads(out)["waits"]
    assert wait["token"] == done.stdout.split("\t")[0] and wait["waiter_id"] == "request"


async def test_the_official_client_streams_a_run_with_a_token_and_answers_it(
    hitl: Emulator,
) -> None:
    client = WorkflowClient(base_url=f"{hitl.url}/deployments/hitl")
    started = await client.run_workflow_nowait("ask", start_event={"prompt": "Colour?"})
    seen = []
    async for event in client.get_workflow_events(started.handler_id):
        seen.append(event.type)
        if event.type == "PromptEvent":
            await client.send_event(
                started.handler_id, {"type": "HumanResponseEvent", "value": {"response": "red"}}
            )
    assert seen == ["WaitTokenIssued", "PromptEvent", "StopEvent"]
    assert result(hitl, started.handler_id) == "You said: red"


def test_a_waiting_runs_token_stays_valid_across_an_emulator_restart(
    example_copy: Callable[[str], Path], emulator_factory: Callable[..., Emulator]
) -> None:
    emulator = emulator_factory(example_copy("hitl"))
    handler_id = approval(emulator)
    token = listed_token(emulator, handler_id)[0]
    emulator.restart()
    code, out, _ = tokens(emulator, "success", token, "--event-json", APPROVE)
    assert code == 0, out
    assert result(emulator, handler_id) == "Approved by ada"
