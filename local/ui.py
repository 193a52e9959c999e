"""The emulator's UI side: dev server or preview build, and the routes that serve them.

:func:`ui_running` runs in the supervising process (before the reload loop, so the
dev server survives app reloads); :func:`emulator_routes` runs in the app process
and gives the routes ``create_app(extra_routes=...)`` puts before the workflow API.

A UI that fails (its packages do not install, its build or dev server fails) never
takes the API down: the supervisor prints one line (the cause, the command that
reproduces it) and records it in a status file; the UI routes then answer 503 with
that message instead of a bare 502.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from llamaws.adapter.config import Deployment
from llamaws.adapter.errors import LlamawsError
from llamaws.builder.ui_build import build_ui, ui_base_path

from .debugger import debugger_routes
from .preview import preview_routes
from .proxy import UIProxy, proxy_routes
from .ui_dev import UIDevServer

__all__ = [
    "emulator_routes",
    "read_ui_failure",
    "record_ui_failure",
    "resolve_ui_port",
    "ui_running",
]


def record_ui_failure(status_file: Path | None, message: str) -> None:
    """Say (one line) and record why the UI is not served."""
    print(f"llamaws: {message}", file=sys.stderr, flush=True)
    if status_file is not None:
        with suppress(OSError):
            status_file.write_text(json.dumps({"detail": message}))


def read_ui_failure(status_file: Path | None) -> str | None:
    """Why the UI is not served, if the supervisor recorded it."""
    if status_file is None:
        return None
    try:
        detail = json.loads(status_file.read_text() or "{}").get("detail")
    except (OSError, ValueError):
        return None
    return detail if isinstance(detail, str) else None


def resolve_ui_port(deployment: Deployment, ui_port: int | None) -> int:
    """``--ui-port``, else the config's ``ui.proxy_port`` (4502 by default)."""
    if ui_port is not None:
        return ui_port
    return deployment.config.ui.proxy_port if deployment.config.ui is not None else 4502


@contextmanager
def ui_running(
    deployment: Deployment,
    *,
    preview: bool,
    install: bool,
    ui_port: int | None,
    server_port: int,
    status_file: Path | None = None,
) -> Iterator[None]:
    """Build the UI (``preview``) or run its dev server for the duration of the block.

    A failure is reported (:func:`record_ui_failure`) and the block runs anyway.
    """
    if deployment.config.ui is None:
        yield
        return
    port = resolve_ui_port(deployment, ui_port)
    skip = "" if not install else "; --no-install skips installing its packages"
    if preview:
        try:
            build_ui(
                deployment,
                dict(os.environ),
                install=install,
                ui_port=port,
                server_port=server_port,
                public=False,  # a local preview: the LlamaCloud key may reach the UI
            )
        except LlamawsError as exc:
            record_ui_failure(status_file, _not_served(exc, skip))
        yield
        return
    server = UIDevServer(
        deployment,
        port,
        server_port,
        install=install,
        on_exit=lambda message: record_ui_failure(status_file, message),
    )
    try:
        server.__enter__()
    except LlamawsError as exc:
        record_ui_failure(status_file, _not_served(exc, skip))
        yield
        return
    try:
        yield
    finally:
        server.__exit__(*sys.exc_info())


def _not_served(exc: LlamawsError, skip: str) -> str:
    said = str(exc).rstrip(".")
    return f"the UI is not served: {said}. The API keeps serving{skip}."


def emulator_routes(
    deployment: Deployment,
    *,
    preview: bool,
    ui_port: int | None,
    ui_status_file: Path | None = None,
) -> list[BaseRoute]:
    """The UI routes (proxy or static preview) and the debugger."""
    routes: list[BaseRoute] = []
    if deployment.config.ui is not None:
        base = ui_base_path(deployment)
        failure = read_ui_failure(ui_status_file)
        if preview and failure is not None:
            routes += _unavailable_routes(base, lambda: failure)
        elif preview:
            assert deployment.ui_build_dir is not None
            routes += preview_routes(base, deployment.ui_build_dir)
        else:
            port = resolve_ui_port(deployment, ui_port)
            proxy = UIProxy(
                f"http://127.0.0.1:{port}", unavailable=lambda: read_ui_failure(ui_status_file)
            )
            routes += proxy_routes(base, proxy)
    return [*routes, *debugger_routes(deployment.base_path)]


def _unavailable_routes(base: str, detail: Callable[[], str | None]) -> list[BaseRoute]:
    async def unavailable(request: Request) -> Response:
        return JSONResponse({"detail": detail()}, status_code=503)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return [Route(base, unavailable, methods=methods),
            Route(base + "/{path:path}", unavailable, methods=methods)]  # fmt: skip
