"""Proxy ``/deployments/<name>/ui`` and below to the UI dev server (HTTP and websockets).

Like ``llamactl serve``: all methods, bodies streamed both ways, hop-by-hop headers
dropped, the path (with its base path) kept as is; websockets (Vite HMR) are
relayed with the client's subprotocols offered upstream and the upstream's choice
returned. Dev server down → 502 ``{"detail": "Upstream server unavailable"}``, or 503
with the reason when the supervisor knows why it is not running (``unavailable``);
no answer within an explicit ``timeout`` → 504 (none by default, like ``llamactl``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:  # imported on the first websocket: ~30 ms off every app server start
    from websockets.asyncio.client import ClientConnection

__all__ = ["HOP_BY_HOP", "UIProxy", "proxy_routes"]

logger = logging.getLogger("llamaws.proxy")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the websocket library itself on the upstream handshake.
_WS_OWN_HEADERS = frozenset(
    {
        "host",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
        "content-length",
    }
)
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _strip_hop_by_hop(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    named = {
        token.strip().lower()
        for key, value in headers
        if key.lower() == "connection"
        for token in value.split(",")
    }
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]


class UIProxy:
    """Relays requests under the UI base path to ``upstream`` (``http://127.0.0.1:4502``)."""

    def __init__(
        self,
        upstream: str,
        *,
        timeout: float | None = None,
        connect_timeout: float = 5.0,
        unavailable: Callable[[], str | None] | None = None,
    ):
        self.upstream = upstream.rstrip("/")
        self._unavailable = unavailable
        # No read or pool timeout by default, like llamactl's proxy: a dev server may hold
        # a request as long as it needs (Vite holds module requests while it optimizes
        # dependencies on a cold start, which can pass a minute on a busy machine; a 60 s
        # read timeout turned those into 504s and a page that never rendered).
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._client: httpx.AsyncClient | None = None
        # One access line per request is enough: uvicorn already logs it.
        logging.getLogger("httpx").setLevel(logging.WARNING)

    @property
    def client(self) -> httpx.AsyncClient:
        # Created lazily, inside the server's event loop.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                follow_redirects=False,
                trust_env=False,
                # A page load opens many requests at once; none waits for a pool slot.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @staticmethod
    def _target_path(scope_path: str, raw_path: bytes | None, query: bytes) -> str:
        path = raw_path.decode("latin-1") if raw_path else quote(scope_path)
        return path + (f"?{query.decode('latin-1')}" if query else "")

    def _forward_headers(
        self, request_headers: list[tuple[str, str]], client: str
    ) -> list[tuple[str, str]]:
        headers = _strip_hop_by_hop(request_headers)
        original_host = next((v for k, v in headers if k.lower() == "host"), "")
        headers = [(k, v) for k, v in headers if k.lower() != "host"]
        headers += [("x-forwarded-host", original_host), ("x-forwarded-proto", "http")]
        if client:
            headers.append(("x-forwarded-for", client))
        return headers

    async def http(self, request: Request) -> Response:
        """Forward one HTTP request, streaming both bodies."""
        target = self.upstream + self._target_path(
            request.scope["path"], request.scope.get("raw_path"), request.scope["query_string"]
        )
        client_host = request.client.host if request.client else ""
        headers = self._forward_headers(list(request.headers.items()), client_host)
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        upstream_request = self.client.build_request(
            request.method,
            target,
            headers=headers,
            content=request.stream() if has_body else None,
        )
        try:
            upstream = await self.client.send(upstream_request, stream=True)
        except httpx.TimeoutException:
            return JSONResponse({"detail": "Upstream server timed out"}, status_code=504)
        except httpx.TransportError as exc:
            logger.debug("UI dev server unavailable: %r", exc)
            reason = self.why_unavailable()
            if reason is not None:
                return JSONResponse({"detail": reason}, status_code=503)
            return JSONResponse({"detail": "Upstream server unavailable"}, status_code=502)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            except httpx.TimeoutException:
                logger.warning("UI dev server stopped answering mid-response: %s", target)
            except httpx.TransportError as exc:
                logger.warning("UI dev server connection lost mid-response: %r", exc)

        response_headers = [
            (k, v)
            for k, v in _strip_hop_by_hop(list(upstream.headers.multi_items()))
            if k.lower() != "date"  # the server adds its own
        ]
        response = StreamingResponse(
            body(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
        )
        # Replace Starlette's defaults with the upstream's headers, repeated ones kept.
        response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1"))
                                for k, v in response_headers]  # fmt: skip
        return response

    def why_unavailable(self) -> str | None:
        """Why the dev server is not running, when the supervisor recorded it."""
        return self._unavailable() if self._unavailable is not None else None

    async def websocket(self, websocket: WebSocket) -> None:
        """Relay a websocket both ways, negotiating the subprotocol with upstream."""
        scope = websocket.scope
        target = (
            "ws"
            + self.upstream.removeprefix("http")
            + self._target_path(scope["path"], scope.get("raw_path"), scope["query_string"])
        )
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus
        from websockets.typing import Subprotocol

        offered = [Subprotocol(p) for p in scope.get("subprotocols", [])]
        headers = [
            (k, v)
            for k, v in _strip_hop_by_hop(list(websocket.headers.items()))
            if k.lower() not in _WS_OWN_HEADERS
        ]
        try:
            upstream = await connect(
                target,
                subprotocols=offered or None,
                additional_headers=headers,
                open_timeout=self._timeout.connect,
                max_size=None,
                ping_interval=None,
                compression=None,
                user_agent_header=None,
            )
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            logger.debug("UI dev server websocket unavailable: %r", exc)
            reason = None if isinstance(exc, InvalidStatus) else self.why_unavailable()
            await _deny(websocket, exc.response.status_code if isinstance(exc, InvalidStatus)
                        else 503 if reason else 502, reason)  # fmt: skip
            return
        async with upstream:
            await websocket.accept(subprotocol=upstream.subprotocol)
            await _relay(websocket, upstream)


async def _deny(websocket: WebSocket, status: int, reason: str | None = None) -> None:
    """Refuse the handshake with an HTTP status (or close when the server cannot)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = {"detail": reason} if reason else {"detail": "Upstream server unavailable"} if (
            status == 502) else {"detail": f"Upstream server answered {status}"}  # fmt: skip
        await websocket.send_denial_response(JSONResponse(body, status_code=status))
    else:
        await websocket.close(code=1011)


async def _relay(websocket: WebSocket, upstream: ClientConnection) -> None:
    from websockets.exceptions import ConnectionClosed

    async def client_to_upstream() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(code=message.get("code", 1000) or 1000)
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async def upstream_to_client() -> None:
        try:
            async for data in upstream:
                if isinstance(data, str):
                    await websocket.send_text(data)
                else:
                    await websocket.send_bytes(data)
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=code if code != 1006 else 1011)

    tasks = [
        asyncio.create_task(client_to_upstream()),
        asyncio.create_task(upstream_to_client()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def proxy_routes(ui_base_path: str, proxy: UIProxy) -> list[BaseRoute]:
    """Routes sending ``ui_base_path`` and below (HTTP and websockets) to ``proxy``."""
    return [
        Route(ui_base_path, proxy.http, methods=_ALL_METHODS),
        Route(ui_base_path + "/{path:path}", proxy.http, methods=_ALL_METHODS),
        WebSocketRoute(ui_base_path, proxy.websocket),
        WebSocketRoute(ui_base_path + "/{path:path}", proxy.websocket),
    ]
