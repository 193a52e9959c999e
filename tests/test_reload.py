"""Reload: the app server restarts on source changes; runs and the UI dev server live on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from llamaws.local.ui_dev import port_is_listening

from .support import Emulator, free_port, wait_until
from .test_ui_proxy import FAKE_DEV

API = "/deployments/hitl"


def _wait_for_prompt(url: str, handler_id: str) -> None:
    with httpx.stream(
        "GET", f"{url}{API}/events/{handler_id}?sse=false&after_sequence=-1", timeout=20
    ) as response:
        for line in response.iter_lines():
            event = json.loads(line) if line else {}
            if "InputRequiredEvent" in [event.get("type"), *(event.get("types") or [])]:
                return
    raise AssertionError("the run never asked its question")


def test_reload_keeps_waiting_run_and_dev_server(
    example_copy: Callable[[str], Path], emulator_factory: Callable[..., Emulator]
) -> None:
    app = example_copy("hitl")
    with (app / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.llamadeploy.ui]\ndirectory = "ui"\nserve_command = "fake-dev"\n')
    (app / "ui").mkdir()
    (app / "ui" / "package.json").write_text(json.dumps({"scripts": {"fake-dev": FAKE_DEV}}))
    ui_port = free_port()
    emulator = emulator_factory(app, "--reload", "--ui-port", str(ui_port))
    wait_until(lambda: port_is_listening(ui_port), what="the fake dev server")
    dev_pid = httpx.get(f"{emulator.url}{API}/ui/env").json()["FAKE_PID"]

    run = httpx.post(f"{emulator.url}{API}/workflows/ask/run-nowait", json={}).json()
    _wait_for_prompt(emulator.url, run["handler_id"])

    source = app / "src" / "hitl" / "workflows.py"
    source.write_text(source.read_text() + "\n# edited\n")
    wait_until(lambda: "reloaded in" in emulator.logs(), timeout=30, what="the reload")
    assert "workflows.py changed, reloading" in emulator.logs()

    # The dev server was not restarted, and the waiting run takes its answer.
    assert httpx.get(f"{emulator.url}{API}/ui/env").json()["FAKE_PID"] == dev_pid
    sent = httpx.post(
        f"{emulator.url}{API}/events/{run['handler_id']}",
        json={"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}},
    )
    assert sent.status_code == 200, sent.text

    def completed() -> dict[str, object] | None:
        handler = httpx.get(f"{emulator.url}{API}/handlers/{run['handler_id']}").json()
        return handler if handler["status"] == "completed" else None

    handler = wait_until(completed, timeout=15, what="the run to complete")
    assert handler["result"]["value"]["result"] == "You said: blue"  # type: ignore[index]


def test_broken_workflow_under_reload_answers_503_until_a_save_fixes_it(
    example_copy: Callable[[str], Path], emulator_factory: Callable[..., Emulator]
) -> None:
    app = example_copy("hello")
    source = app / "src" / "hello" / "workflows.py"
    good = source.read_text()
    source.write_text('raise RuntimeError("boom at import")\n' + good)
    emulator = emulator_factory(app, "--reload", wait=False)
    url = f"{emulator.url}/deployments/hello/workflows"

    def unavailable() -> httpx.Response | None:
        response = httpx.get(url, timeout=5)
        return response if response.status_code == 503 else None

    response = wait_until(unavailable, timeout=60, what="a 503 from the broken app")
    assert "RuntimeError: boom at import" in response.json()["detail"]
    page = httpx.get(f"{emulator.url}/deployments/hello/docs", headers={"accept": "text/html"})
    assert page.status_code == 503 and "boom at import" in page.text
    logs = emulator.logs()
    assert "fix the error and save to reload" in logs
    assert "serving 'hello' at" not in logs  # the banner waits for a built app

    source.write_text(good)
    wait_until(lambda: httpx.get(url, timeout=5).status_code == 200, timeout=30, what="the fix")
    assert "serving 'hello' at" in emulator.logs()
