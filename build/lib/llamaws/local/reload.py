"""Reload: restart the app server process when its sources change.

The supervisor (the ``llamaws serve`` process) owns the listening socket and the
UI dev server; only the app server process is replaced. Because the socket stays
open across restarts, requests made during a reload wait in the backlog and are
answered by the new server instead of being refused. On Linux the app process is
forked from a supervisor that has already imported the server libraries, so a
reload only re-imports the app's own modules.

Each reload prints how long it took: from the change on disk (the changed file's
modification time) to the new server answering ``/health``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from watchfiles import Change, DefaultFilter, watch

__all__ = ["SourceFilter", "serve_with_reload", "watch_targets"]

CONFIG_NAMES = frozenset(
    {
        "pyproject.toml",
        "llama_agents.toml",
        "llama_deploy.toml",
        "llama_agents.yaml",
        "llama_deploy.yaml",
        "llama_agents.yml",
        "llama_deploy.yml",
    }
)


class SourceFilter(DefaultFilter):
    """Python sources, deployment config files and env files (``.env``, ``*.env``)."""

    def __init__(self, env_files: Sequence[str] = ()) -> None:
        super().__init__()
        self._env_names = {Path(name).name for name in env_files}

    def __call__(self, change: Change, path: str) -> bool:
        name = os.path.basename(path)
        wanted = (
            name.endswith((".py", ".env"))
            or name in CONFIG_NAMES
            or name in self._env_names
            or name.startswith(".env")
        )
        return wanted and super().__call__(change, path)


def watch_targets(config_dir: Path, env_files: Sequence[str] = ()) -> list[Path]:
    """What to watch: ``src/`` (else the whole app dir) plus the app's config and env files."""
    src = config_dir / "src"
    if not src.is_dir():
        return [config_dir]
    files = {config_dir / name for name in CONFIG_NAMES} | {config_dir / n for n in env_files}
    files |= set(config_dir.glob(".env*"))
    return [src, *sorted(path for path in files if path.is_file())]


def _context() -> Any:
    # fork: the child inherits the imported libraries and the socket (fast reload);
    # spawn elsewhere (macOS frameworks are not fork-safe).
    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


def _stop(process: BaseProcess | None, timeout: float = 8.0) -> None:
    if process is None or not process.is_alive():
        return
    process.terminate()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(2)


def _changed_at(changes: set[tuple[Change, str]], detected: float) -> float:
    """Wall-clock time of the change: the newest mtime of the changed files."""
    stamps = []
    for _, path in changes:
        with contextlib.suppress(OSError):
            stamps.append(os.stat(path).st_mtime)
    return min(max(stamps), detected) if stamps else detected


def _wait_healthy(process: BaseProcess, health_url: str, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline and process.is_alive():
            with contextlib.suppress(httpx.HTTPError):
                if client.get(health_url).status_code == 200:
                    return True
            time.sleep(0.02)
    return False


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve_with_reload(
    sock: socket.socket,
    target: Callable[..., None],
    args: tuple[Any, ...],
    *,
    watch_paths: Sequence[Path],
    watch_filter: SourceFilter,
    health_url: str,
    preload: Sequence[str] = (),
) -> None:
    """Run ``target(*args, sock)`` in a child process; restart it on source changes."""
    import importlib

    for module in preload:
        importlib.import_module(module)
    sock.listen(2048)
    context = _context()

    def start() -> BaseProcess:
        process: BaseProcess = context.Process(target=target, args=(*args, sock), daemon=False)
        process.start()
        return process

    process = start()
    try:
        with _sigterm_as_interrupt():
            for changes in watch(*watch_paths, watch_filter=watch_filter, debounce=400, step=50):
                detected = time.time()
                changed_at = _changed_at(changes, detected)
                names = ", ".join(sorted({Path(path).name for _, path in changes}))
                _say(f"{names} changed, reloading")
                _stop(process)
                process = start()
                if _wait_healthy(process, health_url):
                    _say(f"reloaded in {time.time() - changed_at:.2f} s (change → /health answers)")
                else:
                    _say("the app server did not start; fix the error and save to reload")
    except KeyboardInterrupt:
        # ^C reaches us twice (the terminal's group signal, then `uv run` forwarding
        # it): ignore the second one while shutting down.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    finally:
        _stop(process)


def _say(message: str) -> None:
    print(f"llamaws: {message}", file=sys.stderr, flush=True)
