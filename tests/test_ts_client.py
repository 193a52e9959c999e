"""The official TypeScript client (@llamaindex/workflows-client, used by @llamaindex/ui) works
unchanged against llamaws: list, sync run, run-nowait, SSE events, send event, handler result."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .support import Emulator

TS_CLIENT_DIR = Path(__file__).parent / "ts-client"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (TS_CLIENT_DIR / "node_modules" / "@llamaindex" / "workflows-client").is_dir():
        return "tests/ts-client/node_modules is missing: run .ci/install-ui-deps.sh"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
]


def test_official_ts_client_runs_hitl_and_sync_workflows_unchanged(
    example_copy: Callable[[str], Path], emulator_factory: Callable[..., Emulator]
) -> None:
    hitl = emulator_factory(example_copy("hitl"))
    hello = emulator_factory(example_copy("hello"))
    result = subprocess.run(
        [
            "node",
            str(TS_CLIENT_DIR / "check.mjs"),
            f"{hitl.url}/deployments/hitl",
            f"{hello.url}/deployments/hello",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=TS_CLIENT_DIR,
        check=False,
    )
    assert result.returncode == 0, f"{result.stderr}\n--- hitl log ---\n{hitl.logs()}"
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["workflows"] == ["approval", "ask", "quiz"]
    assert report["syncRun"] == {
        "workflow": "greet",
        "status": "completed",
        "result": "Hello, Ada!",
    }
    assert report["started"] == {"workflow": "ask", "status": "running"}
    assert report["listedRunning"] is True
    paged = report["paged"]
    assert len(paged["ids"]) >= 2, "one handler per page, more than one page"
    assert paged["ids"] == paged["whole"] and len(set(paged["ids"])) == len(paged["ids"])
    # The run's wait token is announced first; the client passes it by.
    assert report["seenBeforePrompt"][-2:] == ["WaitTokenIssued", "PromptEvent"]
    assert report["prompt"] == {
        "type": "PromptEvent",
        "inputRequired": True,
        "prompt": "What is your favourite colour?",
    }
    assert report["sent"] == {"status": "sent"}
    assert report["final"] == {"status": "completed", "result": "You said: blue", "error": None}


UI_DIST = TS_CLIENT_DIR / "node_modules" / ".llamaindex-ui" / "package" / "dist"


@pytest.mark.skipif(
    not UI_DIST.is_dir(), reason="@llamaindex/ui's dist is missing: run .ci/install-ui-deps.sh"
)
def test_llamaindex_ui_sees_the_wait_token_announcement_as_a_plain_custom_event(
    example_copy: Callable[[str], Path], emulator_factory: Callable[..., Emulator]
) -> None:
    hitl = emulator_factory(example_copy("hitl"))
    result = subprocess.run(
        ["node", str(TS_CLIENT_DIR / "ui-events.mjs"), f"{hitl.url}/deployments/hitl"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=TS_CLIENT_DIR,
        check=False,
    )
    assert result.returncode == 0, f"{result.stderr}\n--- hitl log ---\n{hitl.logs()}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    events = {event["type"]: event for event in report["events"]}
    assert [e["type"] for e in report["events"]] == ["WaitTokenIssued", "PromptEvent", "StopEvent"]
    assert events["WaitTokenIssued"] == {
        "type": "WaitTokenIssued",
        "uiClass": "WorkflowEvent",
        "stop": False,
        "inputRequired": False,
        "humanResponse": False,
        "custom": True,
    }
    assert events["PromptEvent"]["inputRequired"] and events["StopEvent"]["stop"]
