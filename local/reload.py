"""Reload: restart the app server process when its sources change.

The supervisor (the ``llamaws serve`` process) owns the listening socket and the
UI dev server; only the app server process is replaced. Because the socket stays
open across restarts, requests made during a reload wait in the backlog and are
answered by the new server instead of being refused. The app server is forked by
the app host (:mod:`.apphost`), a process in the app's environment that has already
imported the server libraries, so a reload only re-imports the app's own modules.
When the app's dependencies change (``pyproject.toml``, ``uv.lock``), its environment
is brought up to date first, and the host restarted if it changed.

Each reload prints how long it took: from the change on disk (the changed file's
modification time) to the new server answering ``/health``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
from watchfiles import Change, DefaultFilter, watch

from llamaws.adapter.errors import LlamawsError

from .apphost import AppHost

__all__ = ["AppServerStopped", "SourceFilter", "serve_with_reload", "watch_targets"]

DEPENDENCY_FILES = frozenset({"pyproject.toml", "uv.lock"})

CONFIG_NAMES = frozenset(
    {
        "pyproject.toml",
        "uv.lock",
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


def _changed_at(changes: set[tuple[Change, str]], detected: float) -> float:
    """Wall-clock time of the change: the newest mtime of the changed files."""
    stamps = []
    for _, path in changes:
        with contextlib.suppress(OSError):
            stamps.append(os.stat(path).st_mtime)
    return min(max(stamps), detected) if stamps else detected


def _wait_healthy(host: AppHost, health_url: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline and host.alive():
            with contextlib.suppress(httpx.HTTPError):
                if client.get(health_url).status_code == 200:
                    return True
            time.sleep(0.02)
    return False


class AppServerStopped(SystemExit):
    """The app server hit an error no save can fix (it printed it): serve ends."""

    def __init__(self) -> None:
        super().__init__(1)


def serve_with_reload(
    host: AppHost,
    start_host: Callable[[Path], AppHost],
    *,
    watch_paths: Sequence[Path],
    watch_filter: SourceFilter,
    health_url: str,
    announce: Callable[[], None],
    refresh_environment: Callable[[], Path] | None = None,
) -> None:
    """Serve through ``host`` (started); run a fresh app server on each change.

    ``announce`` is called once, when the app is first built. When the app's
    dependency files change, ``refresh_environment`` (if given) brings its environment
    up to date and returns its interpreter; a new one means a new host (``start_host``).
    """
    python = host.python
    announced = False

    def run(changed_at: float | None) -> None:
        nonlocal announced
        pid = host.launch()
        outcome = host.outcome(pid)
        if outcome == "built":
            if not announced:
                announce()
                announced = True
            if changed_at is not None:
                if _wait_healthy(host, health_url):
                    _say(f"reloaded in {time.time() - changed_at:.2f} s (change → /health answers)")
                else:
                    _say("the app server did not answer; save to reload")
        elif outcome == "failed":
            _say("fix the error and save to reload")
        elif outcome == "fatal":
            raise AppServerStopped
        else:
            _say("the app server exited; fix the error and save to reload")

    try:
        run(None)
        for changes in watch(*watch_paths, watch_filter=watch_filter, debounce=400, step=50):
            detected = time.time()
            changed_at = _changed_at(changes, detected)
            names = sorted({Path(path).name for _, path in changes})
            _say(f"{', '.join(names)} changed, reloading")
            if refresh_environment is not None and DEPENDENCY_FILES & set(names):
                try:
                    interpreter = refresh_environment()
                except LlamawsError as exc:
                    print(f"Error: {exc}", file=sys.stderr, flush=True)
                    _say("fix the error and save to reload")
                    continue
                if interpreter != python or not host.alive():
                    host.close()
                    python = interpreter
                    host = start_host(python)
            run(changed_at)
    except KeyboardInterrupt:
        # ^C reaches us twice (the terminal's group signal, then `uv run` forwarding
        # it): ignore the second one while shutting down.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    finally:
        host.close()


def _say(message: str) -> None:
    print(f"llamaws: {message}", file=sys.stderr, flush=True)
