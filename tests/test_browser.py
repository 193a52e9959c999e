"""End to end in headless Chromium: the ui-app example (preview and dev server), the debugger."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .support import Emulator, free_port
from .ui_support import ui_app_copy

BROWSER_DIR = Path(__file__).parent / "browser"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: run .ci/install-ui-deps.sh"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return "tests/browser/node_modules is missing: run .ci/install-ui-deps.sh"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
]


@pytest.mark.parametrize("mode", ["preview", "dev"])
def test_ui_app_and_debugger_in_chromium(
    mode: str, tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    args = ["--preview"] if mode == "preview" else ["--ui-port", str(free_port())]
    emulator = emulator_factory(ui_app_copy(tmp_path), *args)
    result = subprocess.run(
        ["node", str(BROWSER_DIR / "drive.mjs"), emulator.url],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=BROWSER_DIR,
        env={**os.environ, "CHROMIUM_PATH": CHROMIUM},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "error" not in report, report["error"]
    assert report["failed"] == []
    assert report["consoleErrors"] == []

    ui = report["ui"]
    assert ui["prompt"] == "What is your favourite colour?"
    assert ui["result"] == "Your favourite is blue."
    assert ui["events"][0] == "Preparing a question about colour"

    debugger = report["debugger"]
    assert debugger["url"].endswith("/debugger/index.html?api=%2Fdeployments%2Fui-app")
    assert debugger["workflows"] == ["greet"]
    assert debugger["status"] == "completed"
    assert "Your favourite is green." in debugger["result"]
    assert debugger["events"][-1] == "StopEvent"

    if mode == "dev":  # Vite's HMR websocket went through the proxy and got its hello
        hmr = [ws for ws in report["websockets"] if "/deployments/ui-app/ui/" in ws["url"]]
        assert hmr and any('"connected"' in frame for frame in hmr[0]["received"]), report
