"""The UI dev server: ``<package manager> run <serve_command>`` in the UI directory.

Started once by the supervising ``llamaws serve`` process (so it survives app
reloads), with the env contract of :func:`builder.ui_build.ui_env`. A server
already listening on the UI port is reused and left alone. Its output is shown
with a ``[ui]`` prefix; it is stopped (its whole process group) on exit. When it
exits on its own, ``on_exit`` gets one line saying so and how to reproduce it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

from llamaws.adapter.config import Deployment
from llamaws.builder.ui_build import (
    install_ui_dependencies,
    pump_output,
    run_script_command,
    ui_env,
)

__all__ = ["UIDevServer", "port_is_listening"]


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class UIDevServer:
    """A deployment's UI dev server on ``ui_port``, started or reused."""

    deployment: Deployment
    ui_port: int
    server_port: int
    install: bool = True
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    on_exit: Callable[[str], None] | None = None
    """Told (one line) when the dev server exits while it should be running."""
    process: subprocess.Popen[bytes] | None = None
    reused: bool = False
    _previous_sigterm: Any = field(default=signal.SIG_DFL, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def start(self) -> UIDevServer:
        """Start the dev server (after installing the UI's dependencies) unless one runs."""
        ui = self.deployment.config.ui
        assert ui is not None and self.deployment.ui_dir is not None
        if port_is_listening(self.ui_port):
            self.reused = True
            _say(f"reusing the UI dev server already listening on port {self.ui_port}")
            return self
        if self.install:
            install_ui_dependencies(self.deployment, self.environ)
        command = run_script_command(ui.package_manager, ui.serve_command)
        env = ui_env(
            self.deployment, self.environ, ui_port=self.ui_port, server_port=self.server_port
        )
        _say(f"starting the UI dev server on port {self.ui_port}: {' '.join(command)}")
        self.process = subprocess.Popen(
            command,
            cwd=self.deployment.ui_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped as a whole, not by a stray ^C
        )
        assert self.process.stdout is not None
        pump = pump_output(self.process.stdout, "[ui] ")
        threading.Thread(
            target=self._watch, args=(self.process, pump, command), daemon=True
        ).start()
        return self

    def _watch(
        self, process: subprocess.Popen[bytes], pump: threading.Thread, command: list[str]
    ) -> None:
        code = process.wait()
        pump.join(timeout=2)  # its last lines first
        if self.process is process and self.on_exit is not None:
            self.on_exit(
                f"the UI dev server exited (code {code}); `{' '.join(command)}` in "
                f"{self.deployment.ui_dir} reproduces it. The API keeps serving."
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the dev server and everything it started (not a reused one)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                time.sleep(0.05)
            if process.poll() is not None:
                _kill_rest(process.pid)
                return

    def __enter__(self) -> UIDevServer:
        # SIGTERM ends llamaws like ^C does, so the block exits and the dev server stops
        # (uvicorn re-raises the signal after its own shutdown).
        self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return self.start()
        except BaseException:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, KeyboardInterrupt):
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a repeated ^C: finish stopping
        try:
            self.stop()
        finally:
            signal.signal(signal.SIGTERM, self._previous_sigterm)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _kill_rest(pgid: int) -> None:
    """Kill what is left of a process group after its leader exited (e.g. ``vite``)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _say(message: str) -> None:
    print(f"llamaws: {message}", file=sys.stderr, flush=True)
