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
    assert report["prompt"] == {
        "type": "PromptEvent",
        "inputRequired": True,
        "prompt": "What is your favourite colour?",
    }
    assert report["sent"] == {"status": "sent"}
    assert report["final"] == {"status": "completed", "result": "You said: blue", "error": None}
