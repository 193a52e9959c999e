"""What the workflow API does differently inside Lambda.

A container is frozen after each response, so:

- ``POST …/workflows/<w>/run`` drives the run inline within the invocation's time
  budget; when the budget runs out it answers 504 naming the handler id, and the
  run continues asynchronously.
- ``GET …/events/<id>``, when the response is streamed (the streaming runtime loop,
  :mod:`.streaming`), is the live event stream, bounded by ``live_stream_seconds`` and
  the invocation's budget, with a heartbeat after ``heartbeat_seconds`` of silence (SSE
  comment, or an empty NDJSON line) so that CloudFront (30 s between packets) keeps
  it. When responses are buffered (Mangum) it is a bounded long-poll over the stored
  event log: it answers as soon as there is at least one event after
  ``after_sequence`` / ``Last-Event-ID`` (lingering a moment to batch a burst), else
  after a bounded wait. Either way a cut stream ends with an SSE ``retry:`` hint, and
  the client resumes from the last id it saw.
- ``POST …/events/<id>`` puts the event in the run's inbox and asks for a driver;
  ``POST …/handlers/<id>/cancel`` cancels under the run's lease (or through the
  inbox when another container drives it).
- Bodies over Lambda's 6 MB request payload limit are refused with 413.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from llama_agents.server import WorkflowServer
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from workflows.events import Event

from ..delivery import deliverable_run
from ..input_guard import MAX_REQUEST_BYTES, too_large_message
from ..upstream import (
    HandlerCompletedError,
    StartWorkflow,
    new_id,
    override_service,
    service_of,
)
from ..waits.delivery import InboxTicks
from ..waits.service import consuming, waits_of
from .container import STREAMING_SCOPE_KEY
from .coordination import Coordination, InboxEntry
from .driver import TERMINAL, RunDriver
from .events import ContinueRun
from .invoker import Invoker

__all__ = ["MAX_REQUEST_BYTES", "LambdaHttp", "use_inbox_delivery"]


MAX_INVOCATION_MS = 900_000
"""Lambda's longest invocation (15 minutes)."""

Budget = Callable[[], float]
"""Seconds left in the current invocation (safety margin already taken off)."""


class LambdaHttp:
    """ASGI middleware: budgeted ``run``, bounded event streams, payload limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        base_path: str,
        budget: Budget,
        max_stream_seconds: float = 20.0,
        linger_seconds: float = 0.2,
        retry_ms: int = 200,
        live_stream_seconds: float = 120.0,
        heartbeat_seconds: float = 10.0,
    ) -> None:
        self.app = app
        self.budget = budget
        self.max_stream_seconds = max_stream_seconds
        self.live_stream_seconds = live_stream_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.linger_seconds = linger_seconds
        self.retry_ms = retry_ms
        base = re.escape(base_path)
        self._run = re.compile(rf"^{base}/workflows/[^/]+/run$")
        self._events = re.compile(rf"^{base}/events/[^/]+$")
        self._late: set[asyncio.Future[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > MAX_REQUEST_BYTES:
            await _json(send, 413, {"detail": too_large_message(length)})
            return
        path, method = scope["path"], scope["method"]
        if method == "POST" and self._run.match(path):
            await self._budgeted_run(scope, receive, send)
        elif method == "GET" and self._events.match(path):
            if scope.get(STREAMING_SCOPE_KEY):
                await self._bounded_stream(scope, send, live=True)
            else:
                await self._bounded_stream(scope, send, live=False)
        else:
            await self.app(scope, receive, send)

    async def _budgeted_run(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if len(body) > MAX_REQUEST_BYTES:
            await _json(send, 413, {"detail": too_large_message(len(body))})
            return
        handler_id: str | None = None
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = None  # the server answers 400 for it
        if isinstance(parsed, dict):
            handler_id = parsed.get("handler_id") or new_id()
            parsed["handler_id"] = handler_id
            body = json.dumps(parsed).encode()
        replay = _replay(body)
        late = False

        async def forward(message: Message) -> None:
            if not late:
                await send(message)

        # Never cancel the request itself: cancelling the server's wait on the run
        # cancels the run's control loop but orphans its step tasks. The run stays in
        # memory until the end of the invocation, where the driver stops it properly
        # and hands it to a ``continue`` invocation; its late response is dropped.
        inner = asyncio.ensure_future(self.app(scope, replay, forward))
        done, _ = await asyncio.wait({inner}, timeout=max(self.budget(), 0.0))
        if inner in done:
            inner.result()
            return
        late = True
        self._late.add(inner)
        inner.add_done_callback(self._late.discard)
        await _json(
            send,
            504,
            {
                "detail": "The run did not finish within this invocation's time budget; it "
                f"continues asynchronously: poll GET /handlers/{handler_id}.",
                "handler_id": handler_id,
            },
        )

    async def _bounded_stream(self, scope: Scope, send: Send, *, live: bool) -> None:
        """The event stream until its deadline (``live``), or until events came (long-poll)."""
        sse = _query_flag(scope, "sse", default=True)
        started = False
        ended = False
        first_event = asyncio.Event()
        last_sent = time.monotonic()
        sending = asyncio.Lock()

        async def forward(message: Message) -> None:
            nonlocal started, ended, last_sent
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if chunk.strip() and not chunk.startswith(b":"):  # an event, not a heartbeat
                    first_event.set()
                if not message.get("more_body"):
                    ended = True
            async with sending:
                await send(message)
                last_sent = time.monotonic()

        async def heartbeats() -> None:
            nonlocal last_sent
            ping = b": heartbeat\n\n" if sse else b"\n"
            while True:
                await asyncio.sleep(max(last_sent + self.heartbeat_seconds - time.monotonic(), 0))
                if time.monotonic() - last_sent < self.heartbeat_seconds:
                    continue
                async with sending:
                    if started and not ended:
                        await send({"type": "http.response.body", "body": ping, "more_body": True})
                    last_sent = time.monotonic()

        async def no_disconnect() -> Message:
            # Mangum's receive reports a disconnect once the body is read, which would
            # end the server's stream at once; here only the deadline ends it.
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        bound = self.live_stream_seconds if live else self.max_stream_seconds
        deadline = time.monotonic() + max(min(bound, self.budget()), 0.0)
        inner = asyncio.ensure_future(self.app(scope, no_disconnect, forward))
        waits: set[asyncio.Future[Any]] = {inner}
        helper = asyncio.ensure_future(heartbeats() if live else first_event.wait())
        waits.add(helper)
        try:
            await asyncio.wait(
                waits,
                timeout=max(deadline - time.monotonic(), 0.0),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not live and first_event.is_set() and not inner.done():
                # Events are there: linger a moment for the rest of a burst, then answer.
                linger = min(self.linger_seconds, max(deadline - time.monotonic(), 0.0))
                await asyncio.wait({inner}, timeout=linger)
        finally:
            helper.cancel()
            await asyncio.gather(helper, return_exceptions=True)
        if inner.done():
            inner.result()
            return
        inner.cancel()
        await asyncio.gather(inner, return_exceptions=True)
        tail = f"retry: {self.retry_ms}\n\n".encode() if sse else b""
        if not started:
            media = "text/event-stream" if sse else "application/x-ndjson"
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", media.encode())],
                }
            )
        if not ended:
            await send({"type": "http.response.body", "body": tail, "more_body": False})


# -- delivery through the inbox ---------------------------------------------------------


def use_inbox_delivery(
    server: WorkflowServer,
    driver: RunDriver,
    coordination: Coordination,
    invoker: Invoker,
    *,
    cancel_wait_seconds: float = 10.0,
) -> None:
    """Events and cancels reach runs through their inbox and lease (see module doc)."""
    service = service_of(server)

    async def send_event(handler_id: str, event: Event, step: str | None = None) -> None:
        handler, _ = await deliverable_run(service, handler_id, event, step)
        decoder = server.get_json_decoder(handler.workflow_name)
        entry = InboxEntry("event", event=decoder.serialize_value(event), step=step)
        async with consuming(server, handler_id, event):  # the wait token it completes
            await coordination.post(handler_id, entry)
        await invoker.invoke_async(ContinueRun(handler_id).payload())

    async def cancel_handler(
        handler_id: str, purge: bool = False
    ) -> Literal["cancelled", "deleted"] | None:
        handler = await service.load_persistent_handler(handler_id)
        if handler is None:
            return None
        if handler.status in TERMINAL or handler.run_id is None:
            return await driver.cancel(handler_id, purge)
        if await coordination.acquire(handler_id):
            try:
                await driver.load(handler)  # None when it turned out finished
                return await driver.cancel(handler_id, purge)
            finally:
                driver.stop(handler.run_id)
                await coordination.release(handler_id)
        await coordination.post(handler_id, InboxEntry("cancel", purge=purge))
        await invoker.invoke_async(ContinueRun(handler_id).payload())
        return await _until_cancelled(
            service.load_persistent_handler, handler_id, purge, cancel_wait_seconds
        )

    def mark_started(own: StartWorkflow) -> StartWorkflow:
        async def start_workflow(**kwargs: Any) -> Any:
            started = await own(**kwargs)
            # If this container dies before its hand-off, the sweep finds the run once
            # the longest invocation (15 min) and a lease have passed.
            await coordination.mark_due(
                kwargs["handler_id"], MAX_INVOCATION_MS + coordination.lease_ms
            )
            return started

        return start_workflow

    override_service(
        server, send_event=send_event, cancel_handler=cancel_handler, start_workflow=mark_started
    )
    if (waits := waits_of(server)) is not None:  # failures and timeouts of waits: same path
        waits.ticks = InboxTicks(server, coordination, invoker)


async def _until_cancelled(
    load: Callable[[str], Awaitable[Any]], handler_id: str, purge: bool, wait: float
) -> Literal["cancelled", "deleted"] | None:
    """Wait for the driving container to apply a cancel posted to the inbox."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        handler = await load(handler_id)
        if purge and handler is None:
            return "deleted"
        if not purge and handler is not None and handler.status in TERMINAL:
            return "cancelled"
        await asyncio.sleep(0.2)
    raise HandlerCompletedError(
        f"the cancel of handler {handler_id} is queued but was not applied within {wait:.0f}s"
    )


# -- small ASGI helpers ------------------------------------------------------------------


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _query_flag(scope: Scope, name: str, *, default: bool) -> bool:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode()).get(name)
    return default if not values else values[-1] == "true"


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
