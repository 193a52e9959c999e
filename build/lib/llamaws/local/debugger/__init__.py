"""The workflow debugger: an offline page (plain HTML + JS, no CDN) at ``/debugger``.

It lists the deployment's workflows, starts a run with a JSON start event, shows
the run's event stream, and sends an event to a waiting run, all through the
public workflow API (``?api=/deployments/<name>``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "debugger_routes"]

STATIC_DIR = Path(__file__).parent / "static"


def debugger_routes(api_base: str) -> list[BaseRoute]:
    """``/debugger`` → 307 to the page for ``api_base``; the page's files below it."""
    location = f"/debugger/index.html?api={quote(api_base, safe='')}"

    async def redirect(request: Request) -> Response:
        return RedirectResponse(location, status_code=307)

    return [
        Route("/debugger", redirect),
        Route("/debugger/", redirect),
        Mount("/debugger", app=StaticFiles(directory=STATIC_DIR)),
    ]
