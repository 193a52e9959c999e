"""A local DynamoDB/S3 engine: ``moto_server`` on a free loopback port.

Reached over HTTP with the same boto3 code as AWS (``endpoint_url``). Used by
``llamaws serve --lambda`` when no endpoint is given, and by the tests.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from llamaws.adapter.errors import LlamawsError

from .rie import set_parent_death_signal

__all__ = ["LocalEngine", "start_local_engine"]


@dataclass
class LocalEngine:
    """A ``moto_server`` this emulator started (DynamoDB and S3 on one endpoint)."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_local_engine(timeout: float = 30.0) -> LocalEngine:
    """Start ``moto_server`` (from this environment, else PATH) on a free loopback port."""
    import httpx

    binary = Path(sys.executable).with_name("moto_server")
    found = str(binary) if binary.is_file() else shutil.which("moto_server")
    if not found:
        raise LlamawsError(
            "--lambda needs a DynamoDB endpoint and no moto_server is installed",
            hint="Pass --dynamodb-endpoint URL, or install moto: pip install 'moto[server]'.",
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [found, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=set_parent_death_signal,  # called from the main thread: dies with us
    )
    engine = LocalEngine(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LlamawsError(f"moto_server exited at start (code {process.returncode})")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{engine.endpoint}/moto-api/", timeout=1).status_code == 200:
                return engine
        time.sleep(0.05)
    engine.stop()
    raise LlamawsError(f"moto_server did not answer in {timeout:.0f}s")
