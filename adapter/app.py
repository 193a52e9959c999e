"""The ASGI app: the official workflow API mounted under ``/deployments/<name>``.

The URL layout is the one of ``llamactl serve`` (REFERENCE.md): redirects at ``/``
and ``/deployments/<name>``, health paths, ``docs`` and ``openapi.json`` beside the
workflow routes of ``llama-agents-server``'s ``WorkflowServer``. The same app is
served by the emulator (uvicorn) and by the Lambda handler (Mangum).
"""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from llama_agents.server import AbstractWorkflowStore, WorkflowServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from workflows.runtime.types.plugin import Runtime

from .config import Deployment
from .delivery import use_awaited_delivery
from .handler_ids import use_unique_handler_ids
from .handler_pages import handlers_route
from .http_errors import exception_handlers
from .input_guard import MAX_REQUEST_BYTES, InputGuard
from .loader import LoadedWorkflow
from .openapi import served_openapi
from .runtime_stack import durable_runtime
from .upstream import served_workflow_names
from .waits.routes import openapi_paths, wait_routes
from .waits.service import WaitTokens
from .waits.setup import wait_tokens_for, with_wait_tokens

__all__ = ["DeploymentApp", "create_app"]

HEALTH_PATHS = ("/health", "/healthz", "/livez", "/readyz")


@dataclass
class DeploymentApp:
    """The ASGI app of one deployment and the workflow server inside it."""

    app: Starlette
    server: WorkflowServer
    deployment: Deployment
    waits: WaitTokens
    wait_sweep_interval: float | None = None

    async def start(self) -> None:
        """Start the workflow server once (resumes running handlers)."""
        await self.server.start()
        if self.wait_sweep_interval is not None:
            self.waits.start_sweeper(self.wait_sweep_interval)

    async def stop(self) -> None:
        await self.waits.stop_sweeper()
        await self.server.stop()


def create_app(
    deployment: Deployment,
    workflows: Sequence[LoadedWorkflow],
    store: AbstractWorkflowStore,
    *,
    idle_timeout: float = 60.0,
    extra_routes: Sequence[BaseRoute] = (),
    lifespan: bool = True,
    runtime: Runtime | None = None,
    max_request_bytes: int | None = MAX_REQUEST_BYTES,
    too_large_hint: str | None = None,
    wait_sweep_interval: float | None = 1.0,
) -> DeploymentApp:
    """Build the app for ``deployment`` serving ``workflows`` on ``store``.

    ``extra_routes`` (the emulator's UI proxy, debugger) are matched before the
    workflow API. With ``lifespan=False`` the caller starts and stops the server
    (the Lambda handler does it once per container). ``runtime`` replaces the
    default durable stack (the Lambda handler brings its own). Request bodies
    over ``max_request_bytes`` (Lambda's limit; None: no limit) get a 413 whose
    message ends with ``too_large_hint``. Wait tokens expire in a background task
    every ``wait_sweep_interval`` seconds (``None``: the Lambda handler's ``sweep``
    does it).
    """
    waits = wait_tokens_for(deployment, workflows, store)
    runtime = runtime or durable_runtime(store, idle_timeout=idle_timeout)
    server = WorkflowServer(
        workflow_store=store,
        runtime=with_wait_tokens(runtime, waits),
        exception_handlers=exception_handlers(),
    )
    use_awaited_delivery(server)
    use_unique_handler_ids(server)
    waits.attach(server)
    # Inside the server's own app, ahead of its listing: same CORS and input guard.
    server.app.router.routes.insert(0, handlers_route(store, ""))
    for item in workflows:
        server.add_workflow(item.name, item.workflow, additional_events=item.additional_events)

    base = deployment.base_path
    landing = f"{base}/ui/" if deployment.config.ui is not None else f"{base}/docs"

    async def redirect_root(request: Request) -> Response:
        return RedirectResponse(f"{base}/", status_code=307)

    async def redirect_landing(request: Request) -> Response:
        return RedirectResponse(landing, status_code=307)

    async def healthy(request: Request) -> Response:
        return JSONResponse({"status": "Healthy"})

    def schema() -> dict[str, object]:
        described = server.openapi_schema()
        described["paths"] = {**described.get("paths", {}), **openapi_paths()}
        return described

    async def openapi(request: Request) -> Response:
        return JSONResponse(
            served_openapi(schema(), base_path=base, workflow_names=served_workflow_names(server))
        )

    async def docs(request: Request) -> Response:
        return HTMLResponse(_docs_page(deployment.name, base, schema()))

    async def unknown_deployment(request: Request) -> Response:
        name = request.path_params["name"]
        return JSONResponse(
            {"detail": f"Deployment '{name}' not found. Deployments: {deployment.name}"},
            status_code=404,
        )

    routes: list[BaseRoute] = [
        Route("/", redirect_root),
        *(Route(path, healthy) for path in HEALTH_PATHS),
        Route(base, redirect_landing),
        Route(f"{base}/", redirect_landing),
        Route(f"{base}/docs", docs),
        Route(f"{base}/openapi.json", openapi),
        *wait_routes(waits, base),
        *extra_routes,
        Mount(
            base,
            app=InputGuard(
                server.app, max_body_bytes=max_request_bytes, too_large_hint=too_large_hint
            ),
        ),
        Route("/deployments/{name}", unknown_deployment, methods=_ALL_METHODS),
        Route("/deployments/{name}/{rest:path}", unknown_deployment, methods=_ALL_METHODS),
    ]

    @asynccontextmanager
    async def run_server(app: Starlette) -> AsyncIterator[None]:
        await made.start()
        try:
            yield
        finally:
            await made.stop()

    app = Starlette(
        routes=routes,
        lifespan=run_server if lifespan else None,
        exception_handlers=exception_handlers(),
    )
    made = DeploymentApp(app, server, deployment, waits, wait_sweep_interval)
    return made


_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _docs_page(name: str, base: str, schema: dict[str, object]) -> str:
    """A self-contained API reference (the usual Swagger page needs a CDN)."""
    rows = []
    paths = schema.get("paths", {})
    assert isinstance(paths, dict)
    for path, operations in paths.items():
        for method, operation in operations.items():
            summary = operation.get("summary", "") if isinstance(operation, dict) else ""
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td>"
                f"<td><code>{html.escape(base + path)}</code></td>"
                f"<td>{html.escape(str(summary))}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(name)} API</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem}"
        "td{padding:.25rem .75rem;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>{html.escape(name)}: workflow API</h1>"
        f"<p>OpenAPI schema: <a href='{html.escape(base)}/openapi.json'>openapi.json</a></p>"
        f"<table>{''.join(rows)}</table>"
        f"<script type='application/json' id='schema'>{html.escape(json.dumps(schema))}</script>"
        "</body></html>"
    )
