"""The app server: the deployment's ASGI app on uvicorn, on a socket it is handed.

It runs in the app's own environment, with the app's folder as working directory
(:mod:`llamaws.local.apphost` starts it). It tells the supervisor how the build went
with one word per line on an events pipe: ``built``, ``failed`` (an error in the app's
files: fixing and saving them reloads) or ``fatal`` (anything else: serve stops).

When the app fails to build under ``--reload``, the port keeps answering: every request
gets a 503 naming the error (JSON; a small page for a browser) until a save fixes it.
"""

from __future__ import annotations

import gc
import html
import os
import socket
import sys
import traceback
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from llamaws.adapter.config import (
    Deployment,
    llama_cloud_environment,
    resolve_deployment,
    resolve_environment,
)
from llamaws.adapter.errors import (
    ConfigError,
    LlamawsError,
    MissingModuleError,
    WorkflowLoadError,
)

from .options import ServeOptions

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["RELOADABLE", "EventSink", "apply_environment", "run_app_server"]

RELOADABLE: tuple[type[LlamawsError], ...] = (ConfigError, WorkflowLoadError)
"""Errors in the app's own files: a save fixes them (anything else stops serve)."""
ERROR_HEADER = "x-llamaws-error"


class EventSink:
    """Writes one word per line to the supervisor's events pipe (nothing without one)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def send(self, event: str) -> None:
        if self.fd is not None:
            try:
                os.write(self.fd, f"{event}\n".encode())
            except OSError:  # the supervisor is gone; nothing to tell
                self.fd = None


def apply_environment(deployment: Deployment, environ: MutableMapping[str, str]) -> None:
    """Set the app's variables (``env``, env files, LlamaCloud settings) in ``environ``."""
    environ.update(resolve_environment(deployment, environ))
    environ.update(llama_cloud_environment(deployment.config, environ))


def run_app_server(
    options: ServeOptions, sock: socket.socket, events: EventSink, *, announce: bool
) -> int:
    """Build the app and serve it on ``sock`` until stopped; returns the exit code."""
    try:
        deployment = resolve_deployment(options.app_dir)
        apply_environment(deployment, os.environ)
        server = _build(options, deployment, sock)
    except RELOADABLE as exc:
        _report(exc, options)
        if not options.reload:
            return 1
        events.send(f"failed {os.getpid()}")
        _serve_failure(options, sock, exc)
        return 0
    except LlamawsError as exc:
        _report(exc, options)
        events.send(f"fatal {os.getpid()}")
        return 1
    except Exception:
        traceback.print_exc()
        events.send(f"fatal {os.getpid()}")
        return 1
    events.send(f"built {os.getpid()}")
    if announce:
        url = f"http://{options.host}:{options.port}{deployment.base_path}/"
        print(f"llamaws: serving '{deployment.name}' at {url}", file=sys.stderr, flush=True)
    _collect_from_now_on()
    server.run(sockets=[sock])
    return 0


def _collect_from_now_on() -> None:
    """The app host starts with the collector off: freeze what start-up built, turn it on."""
    gc.freeze()
    gc.enable()


def _build(options: ServeOptions, deployment: Deployment, sock: socket.socket) -> Any:
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
        extra_routes=emulator_routes(
            deployment,
            preview=options.preview,
            ui_port=options.ui_port,
            ui_status_file=options.ui_status_file,
        ),
        **_request_limit(options),
    )
    return uvicorn.Server(_uvicorn_config(app.app, options, log_config))


def _request_limit(options: ServeOptions) -> dict[str, Any]:
    """``create_app``'s body limit: Lambda's unless ``--no-request-limit``."""
    if not options.request_limit:
        return {"max_request_bytes": None}
    return {"too_large_hint": "Locally, `llamaws serve --no-request-limit` lifts the limit."}


def _uvicorn_config(app: Any, options: ServeOptions, log_config: dict[str, Any]) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level.lower(),
        log_config=log_config,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )


def _report(exc: LlamawsError, options: ServeOptions) -> None:
    if options.verbose:
        traceback.print_exc()
    if isinstance(exc, MissingModuleError) and not options.install:
        # Name the flag only when the user passed it.
        exc.hint = (
            f"Add '{exc.distribution}' to the app's [project].dependencies (pyproject.toml) "
            "and serve without --no-install: llamaws installs them into the app's environment."
        )
    print(f"Error: {exc}", file=sys.stderr, flush=True)


def _serve_failure(options: ServeOptions, sock: socket.socket, exc: LlamawsError) -> None:
    """Answer every request with 503 and the error until the supervisor replaces us."""
    import uvicorn

    from .logs import configure_logging

    config = _uvicorn_config(
        failure_app(str(exc)), options, configure_logging(options.log_level, options.log_format)
    )
    _collect_from_now_on()
    uvicorn.Server(config).run(sockets=[sock])


def failure_app(message: str) -> Starlette:
    """503 for every request: ``{"detail": ...}``, or a small page for a browser."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    detail = f"The app failed to load: {message.rstrip('.')}. Fix it and save: llamaws reloads."
    headers = {ERROR_HEADER: "load", "Retry-After": "1", "Cache-Control": "no-store"}

    async def unavailable(request: Request) -> Response:
        accept = request.headers.get("accept", "")
        if "text/html" in accept and request.method == "GET":
            page = (
                "<!doctype html><meta charset='utf-8'><title>llamaws: the app failed to load"
                "</title><body style='font-family:system-ui,sans-serif;margin:2rem'>"
                f"<h1>The app failed to load</h1><pre>{html.escape(message)}</pre>"
                "<p>Fix it and save: llamaws reloads the app.</p>"
                "<script>setTimeout(()=>location.reload(),2000)</script></body>"
            )
            return HTMLResponse(page, status_code=503, headers=headers)
        return JSONResponse({"detail": detail}, status_code=503, headers=headers)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", unavailable, methods=methods)])
