"""``llamaws serve --preview``: the built UI served statically under its base path.

The decisions (SPA fallback, content type, cache headers) come from
:mod:`builder.static_rules`, the same rules the cloud publish applies.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from llamaws.builder import static_rules

__all__ = ["PreviewFiles", "preview_routes"]


class PreviewFiles(StaticFiles):
    """Static files with the SPA fallback and headers of :mod:`builder.static_rules`."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, check_dir=False)
        self._root = directory

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        # A path the OS cannot name (``%00``, a lone surrogate) names no file: 404, not 500.
        try:
            return super().lookup_path(path)
        except (ValueError, UnicodeError):
            return "", None

    def _is_file(self, relative: str) -> bool:
        _, stat_result = self.lookup_path(relative)
        return stat_result is not None and stat.S_ISREG(stat_result.st_mode)

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        relative = "" if path == "." else path.replace(os.sep, "/")
        if scope["path"].endswith("/") and relative:
            relative += "/"
        chosen = await anyio.to_thread.run_sync(static_rules.resolve, relative, self._is_file)
        if chosen is None:
            raise HTTPException(status_code=404)
        full_path, stat_result = await anyio.to_thread.run_sync(self.lookup_path, chosen)
        if stat_result is None:
            raise HTTPException(status_code=404)
        response = self.file_response(full_path, stat_result, scope)
        response.headers["cache-control"] = static_rules.cache_control(chosen)
        if response.status_code == 200:
            response.headers["content-type"] = static_rules.content_type(chosen)
        return response


def preview_routes(ui_base_path: str, build_dir: Path) -> list[BaseRoute]:
    """Routes serving ``build_dir`` at ``ui_base_path`` (``/deployments/<n>/ui``)."""

    async def add_slash(request: Request) -> Response:
        return RedirectResponse(f"{ui_base_path}/", status_code=307)

    return [
        Route(ui_base_path, add_slash, methods=["GET", "HEAD"]),
        Mount(ui_base_path, app=PreviewFiles(build_dir)),
    ]
