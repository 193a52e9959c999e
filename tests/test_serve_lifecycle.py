"""``llamaws serve`` stops cleanly on ^C, with and without the reload supervisor."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from .support import ROOT, free_port, wait_until


@pytest.mark.parametrize("mode", [[], ["--no-reload"]], ids=["reload", "no-reload"])
def test_ctrl_c_stops_the_emulator_and_frees_its_port(
    example_copy: Callable[[str], Path], mode: list[str]
) -> None:
    port = free_port()
    app_dir = example_copy("hello")
    log = app_dir.parent / "serve.log"
    command = [
        sys.executable, "-m", "llamaws.cli.main", "serve", str(app_dir),
        "--port", str(port), "--no-open-browser", "--no-install", *mode,
    ]  # fmt: skip
    with log.open("w") as out:
        # A terminal's ^C goes to the whole foreground process group: do the same.
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200,
            timeout=60,
            what="the emulator to answer",
        )
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text()
    assert code in (0, 130), output
    assert "Traceback" not in output
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free again
