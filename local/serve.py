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
from typing import Any, Literal

from llamaws.adapter.config import (
    Deployment,
    resolve_auth,
    resolve_deployment,
    resolve_environment,
)
from llamaws.adapter.errors import LlamawsError

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
    ui_port: int | None = None
    """The UI dev server's port; ``None``: the config's ``ui.proxy_port`` (4502)."""
    preview: bool = False
    """Build the UI and serve it statically instead of running its dev server."""
    lambda_mode: bool = False
    """Every request through the real Lambda handler in RIE containers (``--lambda``)."""
    lambda_containers: int = 2
    """``--lambda``: most containers running at once (each serves one invocation)."""
    lambda_timeout: float = 60.0
    """``--lambda``: the function timeout in seconds."""
    sweep_interval: float = 60.0
    """``--lambda``: seconds between sweep invocations (0: none)."""
    request_limit: bool = True
    """Refuse request bodies over Lambda's 6 MB limit, as the deployed app does."""


def serve(options: ServeOptions) -> None:
    """Resolve, prepare and serve the deployment until interrupted."""
    deployment = _prepare(options)
    sock = _bind(options.host, options.port)
    from .ui import ui_running

    with ui_running(
        deployment,
        preview=options.preview,
        install=options.install,
        ui_port=options.ui_port,
        server_port=options.port,
    ):
        if options.lambda_mode:
            _announce(options, deployment)
            _run_lambda(options, deployment, sock)
        elif options.reload:
            _announce(options, deployment)
            _serve_with_reload(options, deployment, sock)
        else:
            _run(options, deployment, sock, announce=True)


def _announce(options: ServeOptions, deployment: Deployment) -> None:
    url = f"http://{options.host}:{options.port}{deployment.base_path}/"
    print(f"llamaws: serving '{deployment.name}' at {url}", file=sys.stderr, flush=True)


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
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP; without it each request on a kept-alive connection waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


def _run(
    options: ServeOptions,
    deployment: Deployment,
    sock: socket.socket | None,
    *,
    announce: bool = False,
) -> None:
    """Build the app and serve it on ``sock`` (or bind the port) until stopped.

    With ``announce`` the "serving at" line is printed once the app is built, so a
    workflow that fails to import is the only thing reported.
    """
    import uvicorn

    from llamaws.adapter.app import create_app
    from llamaws.adapter.loader import load_workflows

    from .logs import configure_logging
    from .stores import DynamoOptions, open_store
    from .ui import emulator_routes

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
    app = create_app(
        deployment,
        workflows,
        store,
        idle_timeout=options.idle_timeout,
        extra_routes=emulator_routes(deployment, preview=options.preview, ui_port=options.ui_port),
        **_request_limit(options),
    )
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
    if announce:
        _announce(options, deployment)
    if options.open_browser:
        landing = "ui/" if deployment.config.ui is not None else "docs"
        _open_when_ready(
            server, f"http://{options.host}:{options.port}{deployment.base_path}/{landing}"
        )
    server.run(sockets=[sock] if sock is not None else None)


def _request_limit(options: ServeOptions) -> dict[str, Any]:
    """``create_app``'s body limit: Lambda's unless ``--no-request-limit``."""
    if not options.request_limit:
        return {"max_request_bytes": None}
    return {"too_large_hint": "Locally, `llamaws serve --no-request-limit` lifts the limit."}


def _run_lambda(options: ServeOptions, deployment: Deployment, sock: socket.socket) -> None:
    """``--lambda``: serve through ``llamaws.adapter.handler`` in RIE containers (no reload)."""
    from .auth import announce_auth
    from .lambda_mode import lambda_settings, serve_lambda
    from .logs import configure_logging
    from .ui import emulator_routes

    if options.persistence == "memory":
        raise LlamawsError(
            "--lambda keeps runs in DynamoDB: --persistence memory is not shared by containers",
            hint="Drop --persistence (a local engine is started) or pass --persistence dynamodb.",
        )
    settings, engine = lambda_settings(
        app_dir=options.app_dir,
        deployment_name=deployment.name,
        dynamodb_endpoint=options.dynamodb_endpoint,
        dynamodb_table=options.dynamodb_table,
        s3_bucket=options.s3_bucket,
        containers=options.lambda_containers,
        sweep_interval=options.sweep_interval,
        timeout=options.lambda_timeout,
        auth=resolve_auth(deployment, os.environ.get("LLAMAWS_AUTH")),
    )
    print(
        f"llamaws: --lambda: up to {settings.containers} container(s) running "
        f"{settings.handler}; table '{settings.table}' at {settings.dynamodb_endpoint}"
        f"{' (moto, for this session)' if engine else ''}",
        file=sys.stderr,
        flush=True,
    )
    try:
        announce_auth(
            settings,
            app_dir=options.app_dir,
            url=f"http://{_client_host(options.host)}:{options.port}",
            base_path=deployment.base_path,
            own_engine=engine is not None,
        )
        serve_lambda(
            settings,
            sock,
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            log_config=configure_logging(options.log_level, options.log_format),
            extra_routes=emulator_routes(
                deployment, preview=options.preview, ui_port=options.ui_port
            ),
        )
    finally:
        if engine is not None:
            engine.stop()


def _open_when_ready(server: object, url: str) -> None:
    import threading

    def wait_and_open() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not getattr(server, "started", False):
            time.sleep(0.1)
        if getattr(server, "started", False):
            webbrowser.open(url)

    threading.Thread(target=wait_and_open, daemon=True).start()


def _serve_with_reload(options: ServeOptions, deployment: Deployment, sock: socket.socket) -> None:
    from .reload import SourceFilter, serve_with_reload, watch_targets

    child = dataclasses.replace(options, reload=False, open_browser=False)
    serve_with_reload(
        sock,
        _child_main,
        (child, options.open_browser),
        watch_paths=watch_targets(deployment.config_dir, deployment.config.env_files),
        watch_filter=SourceFilter(deployment.config.env_files),
        health_url=f"http://{_client_host(options.host)}:{options.port}/health",
        preload=(
            "uvicorn",
            "llamaws.adapter.app",
            "llamaws.adapter.loader",
            "llamaws.local.stores",
            "llamaws.local.ui",
        ),
    )


def _client_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _child_main(options: ServeOptions, open_browser: bool, sock: socket.socket) -> None:
    """Entry point of the reloadable server process (serves on the supervisor's socket)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        deployment = _prepare(options)
        _run(dataclasses.replace(options, open_browser=open_browser), deployment, sock)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops this process
    except LlamawsError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        print("llamaws: fix the error and save to reload", file=sys.stderr, flush=True)
