"""The app host: the process in the app's environment that runs (and re-runs) its server.

``llamaws serve`` (the CLI, in llamaws's own environment) starts
``<app env python> -m llamaws.local.apphost`` in the app's folder. The host imports the
server libraries at once, while the CLI parses its flags, reads the config and starts
the UI; then the CLI hands it the serve options and the listening socket (over a Unix
socket pair, the socket as a passed file descriptor) and one of these commands:

- ``run`` (``--no-reload``): the host builds and serves the app itself.
- ``start`` (reload): the host forks a fresh app server (stopping the current one); a
  reload thus re-imports only the app's own modules, in the app's environment.
- ``stop``, ``quit``; the end of the control connection ends everything, so the host
  never outlives the CLI.

It reports on an events pipe, one line each: ``started <pid>``, ``exited <pid> <code>``,
and the app server's own ``built <pid>`` / ``failed <pid>`` / ``fatal <pid>``.
:class:`AppHost` is the CLI's side. The host lives in its own session: a terminal's ^C
reaches the CLI, which forwards it once.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import IO, Any

from .options import ServeOptions

__all__ = ["AppHost", "HostEvent", "main"]

PRELOAD = (
    "uvicorn",
    "llamaws.adapter.app",
    "llamaws.adapter.loader",
    "llamaws.local.stores",
    "llamaws.local.ui",
)


# -- the CLI's side -------------------------------------------------------------------


@dataclass(frozen=True)
class HostEvent:
    """One line from the host: ``kind`` (built, failed, fatal, started, exited), ``pid``."""

    kind: str
    pid: int
    code: int | None = None


@dataclass
class AppHost:
    """Starts and talks to an app host process (see the module docstring)."""

    python: Path
    cwd: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    sock: socket.socket | None = field(default=None, init=False)
    """The listening socket handed over by :meth:`attach`."""
    _control: socket.socket | None = field(default=None, init=False, repr=False)
    _events: queue.Queue[HostEvent | None] = field(default_factory=queue.Queue, init=False)

    def start(self) -> AppHost:
        """Start the host process: it imports the server libraries, then awaits orders."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        read_end, write_end = os.pipe()
        command = [
            str(self.python), "-m", "llamaws.local.apphost",
            "--control-fd", str(theirs.fileno()), "--events-fd", str(write_end),
        ]  # fmt: skip
        try:
            self.process = subprocess.Popen(
                command,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(), write_end),
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            os.close(read_end)
            raise
        finally:
            theirs.close()
            os.close(write_end)
        self._control = ours
        threading.Thread(
            target=self._read_events, args=(os.fdopen(read_end, "rb"),), daemon=True
        ).start()
        return self

    def attach(self, options: ServeOptions, sock: socket.socket) -> None:
        """Hand the host what to serve (the options) and where (the listening socket)."""
        assert self._control is not None
        self.sock = sock
        with contextlib.suppress(OSError):
            socket.send_fds(self._control, [b"S"], [sock.fileno()])
        self._send(f"options {options.to_json()}")

    def _read_events(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in stream:
                parts = raw.decode(errors="replace").split()
                if len(parts) >= 2 and parts[1].isdigit():
                    code = parts[2] if len(parts) > 2 else ""
                    number = int(code) if code.lstrip("-").isdigit() else None
                    self._events.put(HostEvent(parts[0], int(parts[1]), number))
        self._events.put(None)  # the host (and every app server) closed the pipe

    def launch(self) -> int | None:
        """Fork a new app server (stopping the current one); returns its pid."""
        self._send("start")
        event = self.next_event(lambda e: e.kind == "started", timeout=60)
        return event.pid if event is not None else None

    def run_here(self) -> None:
        """``--no-reload``: the host itself builds and serves the app (no fork)."""
        self._send("run")

    def outcome(self, pid: int | None, timeout: float = 600.0) -> str:
        """How app server ``pid`` (any, when None) did: built, failed, fatal or exited."""
        event = self.next_event(
            lambda e: (
                e.kind in ("built", "failed", "fatal", "exited") and (pid is None or e.pid == pid)
            ),
            timeout=timeout,
        )
        return "exited" if event is None else event.kind

    def next_event(self, wanted: Callable[[HostEvent], bool], timeout: float) -> HostEvent | None:
        """The next event ``wanted`` accepts (others are dropped); None when the host ended."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                event = self._events.get(timeout=remaining)
            except queue.Empty:
                return None
            if event is None:
                self._events.put(None)  # stays ended for later calls
                return None
            if wanted(event):
                return event

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def interrupt(self) -> None:
        """Pass a ^C on (the host is in its own session, so a terminal's does not reach it)."""
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)

    def wait(self) -> int:
        """Wait for the host to end; its exit code."""
        assert self.process is not None
        return self.process.wait()

    def close(self, timeout: float = 10.0, *, now: bool = False) -> None:
        """Stop the app server and the host (``now``: it has served nothing yet, kill it)."""
        process = self.process
        if process is None:
            return
        if now and process.poll() is None:
            process.kill()
        self._send("quit")
        if self._control is not None:
            self._control.close()
            self._control = None
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _send(self, line: str) -> None:
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.sendall(f"{line}\n".encode())


# -- the host's side ------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llamaws.local.apphost``: see the module docstring."""
    # Importing the server allocates many long-lived objects and little garbage:
    # collecting during imports costs ~10% of a start. The collector is frozen (those
    # objects leave its generations for good) and turned back on before serving.
    gc.disable()
    parser = argparse.ArgumentParser(prog="python -m llamaws.local.apphost")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--events-fd", type=int)
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.control_fd)
    for module in PRELOAD:
        importlib.import_module(module)
    gc.freeze()
    from .app_server import EventSink

    try:
        _, fds, _, _ = socket.recv_fds(control, 1, 1)
    except OSError:
        return 0
    if not fds:
        return 0  # the CLI went away before handing anything over
    sock = socket.socket(fileno=fds[0])
    commands = _lines(control)
    first = next(commands, "")
    if not first.startswith("options "):
        return 0
    options = ServeOptions.from_json(first.removeprefix("options "))
    return _obey(commands, control, options, sock, EventSink(args.events_fd))


def _lines(control: socket.socket) -> Iterator[str]:
    """Lines from the CLI until it closes the connection."""
    pending = b""
    while True:
        try:
            chunk = control.recv(4096)
        except OSError:
            return
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode(errors="replace").strip()


def _obey(
    commands: Iterator[str],
    control: socket.socket,
    options: ServeOptions,
    sock: socket.socket,
    events: Any,
) -> int:
    """``run`` (serve here, once), ``start``, ``stop``, ``quit``."""
    # fork: the child inherits the imported libraries and the socket (fast reload);
    # spawn elsewhere (macOS frameworks are not fork-safe).
    context: Any = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    current: BaseProcess | None = None
    options_json = options.to_json()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)

    def watch(process: BaseProcess) -> None:
        process.join()
        events.send(f"exited {process.pid} {process.exitcode}")

    try:
        for command in commands:
            if command == "run":  # --no-reload: this process is the app server
                threading.Thread(target=_end_with_cli, args=(commands,), daemon=True).start()
                return _run_server(options, sock, events)
            if command in ("start", "stop", "quit"):
                _stop(current)
                current = None
            if command == "start":
                current = context.Process(
                    target=_child, args=(options_json, sock, events.fd), daemon=False
                )
                current.start()
                events.send(f"started {current.pid}")
                threading.Thread(target=watch, args=(current,), daemon=True).start()
            elif command == "quit":
                break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop(current)
    return 0


def _run_server(options: ServeOptions, sock: socket.socket, events: Any) -> int:
    from .app_server import run_app_server

    try:
        return run_app_server(options, sock, events, announce=True)
    except KeyboardInterrupt:
        return 130


def _end_with_cli(commands: Iterator[str]) -> None:
    """Serving here: when the CLI goes away (or says quit), stop like on SIGTERM."""
    for command in commands:
        if command == "quit":
            break
    os.kill(os.getpid(), signal.SIGTERM)


def _child(options_json: str, sock: socket.socket, events_fd: int | None) -> None:
    """One app server process (forked from the host)."""
    from .app_server import EventSink, run_app_server

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _die_with_parent()
    code = 1
    try:
        code = run_app_server(
            ServeOptions.from_json(options_json), sock, EventSink(events_fd), announce=False
        )
    except KeyboardInterrupt:
        code = 130
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _stop(process: BaseProcess | None, timeout: float = 8.0) -> None:
    if process is None or not process.is_alive():
        return
    process.terminate()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(2)


if __name__ == "__main__":
    sys.exit(main())
