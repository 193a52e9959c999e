"""The emulator's UI side: dev server or preview build, and the routes that serve them.

:func:`ui_running` runs in the supervising process (before the reload loop, so the
dev server survives app reloads); :func:`emulator_routes` runs in the app process
and gives the routes ``create_app(extra_routes=...)`` puts before the workflow API.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.routing import BaseRoute

from llamaws.adapter.config import Deployment
from llamaws.builder.ui_build import build_ui, ui_base_path

from .debugger import debugger_routes
from .preview import preview_routes
from .proxy import UIProxy, proxy_routes
from .ui_dev import UIDevServer

__all__ = ["emulator_routes", "resolve_ui_port", "ui_running"]


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
) -> Iterator[None]:
    """Build the UI (``preview``) or run its dev server for the duration of the block."""
    if deployment.config.ui is None:
        yield
        return
    port = resolve_ui_port(deployment, ui_port)
    if preview:
        build_ui(
            deployment, dict(os.environ), install=install, ui_port=port, server_port=server_port
        )
        yield
        return
    with UIDevServer(deployment, port, server_port, install=install):
        yield


def emulator_routes(
    deployment: Deployment, *, preview: bool, ui_port: int | None
) -> list[BaseRoute]:
    """The UI routes (proxy or static preview) and the debugger."""
    routes: list[BaseRoute] = []
    if deployment.config.ui is not None:
        base = ui_base_path(deployment)
        if preview:
            assert deployment.ui_build_dir is not None
            routes += preview_routes(base, deployment.ui_build_dir)
        else:
            port = resolve_ui_port(deployment, ui_port)
            routes += proxy_routes(base, UIProxy(f"http://127.0.0.1:{port}"))
    return [*routes, *debugger_routes(deployment.base_path)]
