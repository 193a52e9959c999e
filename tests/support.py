"""Helpers for tests: free ports, deadline polling, real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # keep polling, report the last one
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or check!r}; last error: {last_error!r}")


@dataclass
class Emulator:
    """A real ``llamaws serve`` process on a free port."""

    app_dir: Path
    port: int
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> Emulator:
        command = [
            sys.executable, "-m", "llamaws.cli.main", "serve", str(self.app_dir),
            "--port", str(self.port), "--no-reload", "--no-open-browser", "--no-install",
            *self.args,
        ]  # fmt: skip
        self.log_path = self.log_path or self.app_dir / f".emulator-{self.port}.log"
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **self.env},
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"emulator exited:\n{self.logs()}")
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"emulator not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()


def parse_llamaws(args: list[str]) -> None:
    """Parse ``llamaws ARGS`` with the real CLI without running it: the command exists and
    takes those options and arguments (click's usage error otherwise)."""
    import typer

    from llamaws.cli.main import app

    command: Any = typer.main.get_command(app)
    if args and args[0] in ("--install-completion", "--show-completion"):
        assert any(args[0] in p.opts for p in command.params)
        return

    def rest(context: Any) -> list[str]:
        # A group's context keeps the subcommand apart (click >= 8.2: privately).
        protected = getattr(context, "_protected_args", None)
        if protected is None:
            protected = context.protected_args
        return [*protected, *context.args]

    context = command.make_context("llamaws", list(args))
    while hasattr(command, "resolve_command") and rest(context):
        name, command, remaining = command.resolve_command(context, rest(context))
        context = command.make_context(name, remaining, parent=context)
    assert not hasattr(command, "resolve_command"), (
        f"`llamaws {' '.join(args)}` names a group, not a command"
    )
