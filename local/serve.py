"""``llamaws serve``: the deployment's app on uvicorn, like ``llamactl serve``."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import socket
import sys
import time
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from adapter.config import Deployment, resolve_deployment, resolve_environment
from adapter.errors import LlamawsError

from .stores import Persistence

__all__ = ["ServeOptions", "serve"]

logger = logging.getLogger("llamaws.serve")

LogFormat = Literal["console", "json"]


@dataclass(frozen=True)
class ServeOptions:
    """What ``llamaws serve`` was asked for (the CLI flags)."""

    app_dir: Path = Path(".")
    host: str = "127.0.0.1"
    port: int = 4501
    persistence: Persistence = "local"
    local_persistence_path: Path | None = None
    dynamodb_endpoint: str | None = None
    dynamodb_table: str | None = None
    s3_bucket: str | None = None
    log_level: str = "INFO"
    log_format: LogFormat = "console"
    reload: bool = True
    open_browser: bool = True
    install: bool = True
    idle_timeout: float = 60.0


def serve(options: ServeOptions) -> None:
    """Resolve, prepare and serve the deployment until interrupted."""
    deployment = _prepare(options)
    sock = _bind(options.host, options.port)
    url = f"http://{options.host}:{options.port}{deployment.base_path}/"
    print(f"llamaws: serving '{deployment.name}' at {url}", file=sys.stderr, flush=True)
    if options.reload:
        sock.close()
        _serve_with_reload(options, deployment)
    else:
        _run(options, deployment, sock)


def _prepare(options: ServeOptions) -> Deployment:
    deployment = resolve_deployment(options.app_dir)
    os.environ.update(resolve_environment(deployment, os.environ))
    if options.install:
        from .dependencies import install_missing

        installed = install_missing(deployment.config_dir)
        if installed:
            print(f"llamaws: installed {', '.join(installed)}", file=sys.stderr)
    return deployment


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise LlamawsError(
                f"port {port} on {host} is already in use",
                hint="Stop the other server or pass --port.",
            ) from exc
        raise LlamawsError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def _run(options: ServeOptions, deployment: Deployment, sock: socket.socket | None) -> None:
    """Build the app and serve it on ``sock`` (or bind the port) until stopped."""
    import uvicorn

    from adapter.app import create_app
    from adapter.loader import load_workflows

    from .logs import configure_logging
    from .stores import DynamoOptions, open_store

    log_config = configure_logging(options.log_level, options.log_format)
    workflows = load_workflows(deployment)
    store = open_store(
        options.persistence,
        deployment.config_dir,
        options.local_persistence_path,
        dynamodb=DynamoOptions(
            options.dynamodb_endpoint, options.dynamodb_table, options.s3_bucket
        ),
        deployment_name=deployment.name,
    )
    app = create_app(deployment, workflows, store, idle_timeout=options.idle_timeout)
    config = uvicorn.Config(
        app.app,
        host=options.host,
        port=options.port,
        log_level=options.log_level.lower(),
        log_config=log_config,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    if options.open_browser:
        landing = "ui/" if deployment.config.ui is not None else "docs"
        _open_when_ready(server, f"http://{options.host}:{options.port}{deployment.base_path}/{landing}")
    server.run(sockets=[sock] if sock is not None else None)


def _open_when_ready(server: object, url: str) -> None:
    import threading

    def wait_and_open() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not getattr(server, "started", False):
            time.sleep(0.1)
        if getattr(server, "started", False):
            webbrowser.open(url)

    threading.Thread(target=wait_and_open, daemon=True).start()


def _serve_with_reload(options: ServeOptions, deployment: Deployment) -> None:
    from watchfiles import Change, PythonFilter, run_process

    src = deployment.config_dir / "src"
    watch = src if src.is_dir() else deployment.config_dir
    started = time.monotonic()

    def on_change(changes: set[tuple[Change, str]]) -> None:
        nonlocal started
        started = time.monotonic()
        names = sorted({Path(path).name for _, path in changes})
        print(f"llamaws: {', '.join(names)} changed, reloading", file=sys.stderr, flush=True)

    child = dataclasses.replace(options, reload=False, open_browser=False)
    run_process(
        watch,
        target=_child_main,
        args=(child, options.open_browser),
        callback=on_change,
        watch_filter=PythonFilter(extra_extensions=(".toml", ".yaml", ".env")),
    )


def _child_main(options: ServeOptions, open_browser: bool) -> None:
    """Entry point of the reloadable server process."""
    try:
        deployment = _prepare(options)
        _run(dataclasses.replace(options, open_browser=open_browser), deployment, None)
    except LlamawsError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        print("llamaws: fix the error and save to reload", file=sys.stderr, flush=True)
