"""``llamaws serve --lambda``: every request through the real Lambda handler.

The emulator plays the parts AWS plays around the function:

- **Function URL / HTTP API.** Each HTTP request on the app port becomes an API
  Gateway HTTP API (payload 2.0) event (:func:`http_event`), the same shape a
  Function URL delivers, and is invoked synchronously on a container; the
  handler's answer becomes the HTTP response (:func:`http_response`). Like
  Lambda, an event over 6 MB (6,291,456 bytes, after base64 of a binary body)
  is refused with 413 before any invocation, a response over 6 MB is a 502,
  and a function error or timeout is a 502 ``{"message": "Internal Server Error"}``.
  With ``auth = "iam"`` the URL's ``AWS_IAM`` auth type is played too: SigV4 is
  checked before invoking (``local/sigv4.py``), 403 ``{"Message": "Forbidden"}``
  otherwise.
- **Response streaming** (``[tool.llamaws] streaming``, default true; the env
  ``LLAMAWS_STREAMING=0`` overrides it): a Function URL in ``RESPONSE_STREAM`` mode.
  Each container is a :class:`~llamaws.local.runtime_api.LoopContainer`: the streaming
  runtime loop that the deployed function runs (through its ``exec_wrapper``) against
  a local Runtime API that hands each chunk over as it arrives, so the response (the
  prelude's status, headers and cookies, then the chunks) reaches the client live; no
  6 MB response limit; an error after the first byte cuts the response, as the URL does.
  Without streaming, the URL is ``BUFFERED``: responses are posted whole (and event
  streams are the long-poll).
- **Containers.** A :class:`ContainerPool` of execution environments: streaming loops,
  or RIE processes (``llamaws.local.rie``) running ``llamaws.adapter.handler.handler``
  under ``awslambdaric`` when buffered. Each serves one invocation at a time (a
  streamed one until the function has posted all of it, read or not); a new one is
  started (cold start) only when all are busy and fewer than ``--lambda-containers``
  (default 2) exist; when all are busy, invocations wait for one (Lambda would throttle
  at its concurrency limit instead). A container whose RIE died is replaced on the next use.
- **Asynchronous invocation** (``InvocationType=Event``). The containers get
  ``LLAMAWS_ASYNC_INVOKE_URL`` pointing to a private loopback endpoint
  (``POST /__llamaws/invoke-async``, not on the app port) that answers 202 at
  once and queues the event (1 MB limit, 413 above); a dispatcher invokes queued
  events on free containers. Failed asynchronous invocations are logged, not
  retried (Lambda retries twice over minutes; the sweeper covers lost runs).
- **Schedule.** A sweep event ``{"llamaws": {"kind": "sweep"}}`` is queued every
  ``--sweep-interval`` seconds (an EventBridge rule in the cloud).
- **State.** Runs live in DynamoDB: ``--dynamodb-endpoint`` (or
  ``AWS_ENDPOINT_URL_DYNAMODB``) when given, else a ``moto_server`` from this
  environment is started on a free loopback port for the session (runs are lost
  when the emulator stops). The table (and the ``--s3-bucket``) are created
  before the first invocation.

The UI routes (dev-server proxy or preview) and the debugger are served by the
emulator itself, as CloudFront and S3 serve the UI in the cloud.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from llamaws.adapter.config import AuthMode, resolve_deployment, resolve_streaming
from llamaws.adapter.errors import LlamawsError

from .engine import LocalEngine, start_local_engine
from .lambda_events import http_event, http_response
from .rie import Invocation, RieContainer
from .runtime_api import LoopContainer, Piece, Streamed

if TYPE_CHECKING:
    from .sigv4 import SigV4Verifier

__all__ = [
    "ASYNC_INVOKE_PATH",
    "LAMBDA_HANDLER",
    "MAX_ASYNC_PAYLOAD",
    "MAX_SYNC_PAYLOAD",
    "AsyncInvoker",
    "ContainerPool",
    "LambdaContainer",
    "LambdaFrontend",
    "LambdaService",
    "LambdaSettings",
    "lambda_settings",
    "serve_lambda",
]

logger = logging.getLogger("llamaws.lambda")

LAMBDA_HANDLER = "llamaws.adapter.handler.handler"
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
"""Lambda's limit for a synchronous request (and response) payload: 6,291,456 bytes."""
MAX_ASYNC_PAYLOAD = 1024 * 1024
"""Lambda's limit for an asynchronous (``Event``) payload: 1 MB (256 KB before 2025)."""
ASYNC_INVOKE_PATH = "/__llamaws/invoke-async"
SWEEP_EVENT: dict[str, Any] = {"llamaws": {"kind": "sweep"}}


@dataclass(frozen=True)
class LambdaSettings:
    """How the emulated function is configured (the CLI's ``--lambda*`` flags)."""

    app_dir: Path
    table: str
    dynamodb_endpoint: str
    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    """Default: ``$AWS_ENDPOINT_URL_S3``, else the DynamoDB endpoint (moto serves both)."""
    containers: int = 2
    sweep_interval: float = 60.0
    timeout: float = 60.0
    """The function timeout in seconds (whole seconds, like Lambda)."""
    memory_mb: int = 1024
    handler: str = LAMBDA_HANDLER
    extra_env: Mapping[str, str] = field(default_factory=dict)
    python: str = sys.executable
    """The interpreter of the app's environment (the containers run the handler with it)."""
    auth: AuthMode = "key"
    """The deployment's auth (``LLAMAWS_AUTH`` of the function); ``iam`` also makes the
    emulated function URL check SigV4 signatures."""
    streaming: bool = False
    """Response streaming (the streaming runtime loop), else buffered (RIE, awslambdaric)."""

    @property
    def s3_endpoint_url(self) -> str:
        return self.s3_endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or self.dynamodb_endpoint

    def function_env(self, async_invoke_url: str) -> dict[str, str]:
        """The function's environment (what the stack sets in the cloud)."""
        env = {
            "LLAMAWS_APP_DIR": str(self.app_dir.resolve()),
            "LLAMAWS_TABLE": self.table,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint_url,
            "LLAMAWS_ASYNC_INVOKE_URL": async_invoke_url,
            "LLAMAWS_AUTH": self.auth,
            **self.extra_env,
        }
        if self.s3_bucket:
            env["LLAMAWS_S3_BUCKET"] = self.s3_bucket
        return env


# --- containers ----------------------------------------------------------------------


class LambdaContainer(Protocol):
    """An execution environment: :class:`RieContainer` or :class:`LoopContainer`."""

    def start(self) -> Any: ...

    def invoke(self, event: Mapping[str, Any] | bytes) -> Invocation: ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...


C = TypeVar("C", bound=LambdaContainer)


class ContainerPool(Generic[C]):
    """Up to ``size`` containers; each serves one invocation at a time.

    A warm idle container is preferred (most recently used first); a new one is
    started only when none is idle, up to ``size``; beyond that callers wait.
    """

    def __init__(self, factory: Callable[[], C], size: int) -> None:
        if size < 1:
            raise LlamawsError("--lambda-containers must be at least 1")
        self._factory = factory
        self.size = size
        self._idle: list[C] = []
        self._all: list[C] = []
        self._condition = threading.Condition()
        self._closed = False
        self.cold_starts = 0
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="lambda-spawner")

    @contextlib.contextmanager
    def container(self, timeout: float = 900.0) -> Iterator[C]:
        """A container for the block (started if needed); it returns to the pool after."""
        container = self._acquire(timeout)
        try:
            yield container
        finally:
            self._release(container)

    def invoke(self, event: Mapping[str, Any] | bytes) -> Invocation:
        """Invoke on a free container."""
        with self.container() as container:
            return container.invoke(event)

    def _acquire(self, timeout: float) -> C:
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                if self._closed:
                    raise LlamawsError("the Lambda emulator is stopping")
                while self._idle:
                    candidate = self._idle.pop()
                    if candidate.alive():
                        return candidate
                    self._all.remove(candidate)  # its RIE died: replace it
                if len(self._all) < self.size:
                    placeholder = self._factory()
                    self._all.append(placeholder)
                    self.cold_starts += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LlamawsError(f"no Lambda container free after {timeout:.0f}s")
                self._condition.wait(remaining)
        try:
            # Started from one long-lived thread: with die_with_parent the RIE ends
            # when that thread (this process) ends, even if it is killed.
            self._spawner.submit(placeholder.start).result()
            return placeholder
        except BaseException:
            with self._condition:
                self._all.remove(placeholder)
                self._condition.notify()
            raise

    def _release(self, container: C) -> None:
        with self._condition:
            retire = self._closed or not container.alive()
            if retire:
                if container in self._all:
                    self._all.remove(container)
            else:
                self._idle.append(container)
            self._condition.notify()
        if retire:
            container.stop()

    @property
    def started(self) -> int:
        with self._condition:
            return len(self._all)

    def open(self: ContainerPool[LoopContainer], event: Mapping[str, Any] | bytes) -> Streamed:
        """Start a streamed invocation on a free container, held until the function is done."""
        container = self._acquire(900.0)
        try:
            streamed = container.open(event)
        except BaseException:
            self._release(container)
            raise
        streamed.when_done(lambda: self._release(container))
        return streamed

    def close(self) -> None:
        """Stop every container; invocations in flight fail (their RIE is gone)."""
        with self._condition:
            self._closed = True
            everything, self._all, self._idle = self._all, [], []
            self._condition.notify_all()
        for container in everything:
            container.stop()
        self._spawner.shutdown(wait=False)


class AsyncInvoker:
    """Lambda's asynchronous invocation: an HTTP endpoint, a queue, a dispatcher.

    ``url`` is what the function gets as ``LLAMAWS_ASYNC_INVOKE_URL``.
    """

    def __init__(self, pool: ContainerPool[Any], host: str = "127.0.0.1") -> None:
        self.pool = pool
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.executor = ThreadPoolExecutor(pool.size, thread_name_prefix="lambda-async")
        self.completed = 0
        self.failed = 0
        self._server = ThreadingHTTPServer((host, 0), _make_invoke_handler(self))
        self._server.daemon_threads = True
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="lambda-invoke-api"),
            threading.Thread(target=self._dispatch, name="lambda-dispatcher"),
        ]
        for thread in self._threads:
            thread.daemon = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{ASYNC_INVOKE_PATH}"

    def start(self) -> AsyncInvoker:
        for thread in self._threads:
            thread.start()
        return self

    def enqueue(self, event: dict[str, Any]) -> None:
        self.queue.put(event)

    def _dispatch(self) -> None:
        while True:
            event = self.queue.get()
            if event is None:
                return
            self.executor.submit(self._invoke, event)

    def _invoke(self, event: dict[str, Any]) -> None:
        kind = _event_kind(event)
        try:
            invocation = self.pool.invoke(event)
        except LlamawsError as exc:
            self.failed += 1
            logger.warning("async invocation (%s) not run: %s", kind, exc)
            return
        if invocation.function_error is not None:
            self.failed += 1
            logger.warning(
                "async invocation (%s) failed (%s): %s",
                kind, invocation.function_error, invocation.text[:1000],
            )  # fmt: skip
        else:
            self.completed += 1
            logger.info("async invocation (%s) -> %s", kind, invocation.text[:300])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.queue.put(None)
        self.executor.shutdown(wait=False, cancel_futures=True)


def _event_kind(event: Mapping[str, Any]) -> str:
    inner = event.get("llamaws")
    if isinstance(inner, dict):
        return str(inner.get("kind", "?"))
    return "event"


def _make_invoke_handler(invoker: AsyncInvoker) -> type[BaseHTTPRequestHandler]:
    class InvokeHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.split("?")[0] != ASYNC_INVOKE_PATH:
                self._answer(404, {"message": "Not Found"})
                return
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_ASYNC_PAYLOAD:
                self._answer(413, {"message": "Request must be smaller than 1 MB for Event"})
                return
            try:
                event = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                self._answer(400, {"message": "Could not parse request body into json"})
                return
            if not isinstance(event, dict):
                self._answer(400, {"message": "The event must be a JSON object"})
                return
            invoker.enqueue(event)
            self._answer(202, {"StatusCode": 202})

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("invoke-async: " + format, *args)

    return InvokeHandler


class Sweeper:
    """Queues a sweep event every ``interval`` seconds (the cloud's schedule rule)."""

    def __init__(self, invoker: AsyncInvoker, interval: float) -> None:
        self.invoker = invoker
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lambda-sweeper", daemon=True)

    def start(self) -> Sweeper:
        if self.interval > 0:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.invoker.enqueue(dict(SWEEP_EVENT))

    def stop(self) -> None:
        self._stop.set()


# --- the HTTP side --------------------------------------------------------------------


class LambdaFrontend:
    """The ASGI app on the app port: each request is one synchronous invocation."""

    def __init__(self, service: LambdaService, *, iam: SigV4Verifier | None = None) -> None:
        self.service = service
        self.iam = iam
        """``auth = "iam"``: the function URL's AWS_IAM auth type (``local/sigv4.py``)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":  # websockets: API Gateway HTTP APIs have none
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        body, too_big = await _read_body(receive, MAX_SYNC_PAYLOAD)
        if too_big:
            await _send(send, 413, {"message": "Request Entity Too Large"})
            return
        client = scope.get("client") or ("127.0.0.1", 0)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        query = scope.get("query_string", b"").decode("latin-1")
        event = http_event(
            scope["method"],
            raw_path.decode("latin-1"),
            query,
            headers,
            body,
            source_ip=str(client[0]),
            protocol=f"HTTP/{scope.get('http_version', '1.1')}",
        )
        if self.iam is not None:
            from .sigv4 import SignatureRejected

            try:
                caller = self.iam.verify(
                    scope["method"], raw_path.decode("latin-1"), query, headers, body
                )
            except SignatureRejected as exc:
                logger.warning("%s %s: 403, SigV4: %s", scope["method"], scope["path"], exc)
                await _send(send, 403, {"Message": "Forbidden"})
                return
            event["requestContext"]["authorizer"] = {"iam": caller}
        payload = json.dumps(event).encode()
        if len(payload) > MAX_SYNC_PAYLOAD:
            await _send(send, 413, {"message": "Request Entity Too Large"})
            return
        if self.service.settings.streaming:
            await self._streamed(scope, send, payload, event["requestContext"]["requestId"])
            return
        import anyio.to_thread

        try:
            invocation = await anyio.to_thread.run_sync(self.service.pool.invoke, payload)
        except LlamawsError as exc:
            logger.error("invocation not run: %s", exc)
            await _send(send, 503, {"message": "Service Unavailable"})
            return
        request_id = event["requestContext"]["requestId"]
        if invocation.function_error is not None:
            logger.error(
                "%s %s: function error (%s): %s",
                scope["method"], scope["path"], invocation.function_error, invocation.text[:2000],
            )  # fmt: skip
            await _send(send, 502, {"message": "Internal Server Error"}, request_id)
            return
        if len(invocation.body) > MAX_SYNC_PAYLOAD:
            logger.error("%s %s: response over 6 MB", scope["method"], scope["path"])
            await _send(send, 502, {"message": "Internal Server Error"}, request_id)
            return
        try:
            status, headers, content = http_response(invocation.payload)
        except (ValueError, TypeError, KeyError) as exc:
            logger.error("malformed Lambda response %r: %s", invocation.text[:500], exc)
            await _send(send, 502, {"message": "Internal Server Error"}, request_id)
            return
        headers.append(("x-amzn-requestid", request_id))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _streamed(self, scope: Any, send: Any, payload: bytes, request_id: str) -> None:
        """A Function URL in ``RESPONSE_STREAM`` mode: the answer goes out as it comes."""
        import anyio.to_thread

        what = f"{scope['method']} {scope['path']}"
        try:
            streamed = await anyio.to_thread.run_sync(self.service.pool.open, payload)
        except LlamawsError as exc:
            logger.error("invocation not run: %s", exc)
            await _send(send, 503, {"message": "Service Unavailable"})
            return
        head = await anyio.to_thread.run_sync(streamed.next_piece)
        if head.kind == "error":
            logger.error("%s: function error (%s): %s", what, head.error_type, head.data[:2000])
            await _send(send, 502, {"message": "Internal Server Error"}, request_id)
            return
        if head.kind == "whole":  # posted whole: a buffered answer, read as such
            try:
                status, headers, content = http_response(json.loads(head.data))
            except (ValueError, TypeError, KeyError) as exc:
                logger.error("malformed Lambda response %r: %s", head.data[:500], exc)
                await _send(send, 502, {"message": "Internal Server Error"}, request_id)
                return
            await _start(send, status, [*headers, ("x-amzn-requestid", request_id)])
            await send({"type": "http.response.body", "body": content})
            return
        status, headers = _from_prelude(head)
        await _start(send, status, [*headers, ("x-amzn-requestid", request_id)])
        while True:
            piece: Piece = await anyio.to_thread.run_sync(streamed.next_piece)
            if piece.kind == "chunk":
                await send({"type": "http.response.body", "body": piece.data, "more_body": True})
            elif piece.kind == "end" and piece.error_type is None:
                await send({"type": "http.response.body", "body": b""})
                return
            else:  # error trailers, a timeout or a dead runtime: the URL cuts the response
                logger.error(
                    "%s: the function failed after its first byte (%s): %s; response cut",
                    what, piece.error_type, piece.data[:2000],
                )  # fmt: skip
                return  # incomplete: the server closes the connection


def _from_prelude(head: Piece) -> tuple[int, list[tuple[str, str]]]:
    """Status and headers of a streamed response (no prelude: a 200 of octets)."""
    prelude = head.prelude
    if prelude is None:
        return 200, [("content-type", "application/octet-stream")]
    headers = [
        (str(name).lower(), str(value))
        for name, value in (prelude.get("headers") or {}).items()
        if str(name).lower() not in ("content-length", "transfer-encoding", "connection")
    ]
    headers += [("set-cookie", str(cookie)) for cookie in prelude.get("cookies") or []]
    return int(prelude.get("statusCode", 200)), headers


async def _start(send: Any, status: int, headers: list[tuple[str, str]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        }
    )


async def _read_body(receive: Any, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


async def _send(send: Any, status: int, payload: dict[str, Any], request_id: str = "") -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json")]
    if request_id:
        headers.append((b"x-amzn-requestid", request_id.encode()))
    if status == 502:
        headers.append((b"x-amzn-errortype", b"InternalServerErrorException"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- the local DynamoDB engine -------------------------------------------------------


_DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "llamaws-local",
    "AWS_SECRET_ACCESS_KEY": "llamaws-local",
    "AWS_SESSION_TOKEN": "llamaws-local",
}


def ensure_resources(settings: LambdaSettings) -> None:
    """Create the table (and the spill bucket) on the local engine when missing."""
    from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore

    store = DynamoWorkflowStore(
        DynamoSettings(
            table_name=settings.table,
            endpoint_url=settings.dynamodb_endpoint,
            region_name=os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1",
            s3_bucket=settings.s3_bucket,
            s3_endpoint_url=settings.s3_endpoint_url,
        )
    )
    store.create_resources()


@dataclass
class LambdaService:
    """Everything ``--lambda`` runs beside the HTTP server, started and stopped together."""

    settings: LambdaSettings
    log: Any = None
    pool: ContainerPool[Any] = field(init=False)
    invoker: AsyncInvoker = field(init=False)
    sweeper: Sweeper = field(init=False)

    def start(self) -> LambdaService:
        ensure_resources(self.settings)
        holder: dict[str, str] = {}

        def make_container() -> LambdaContainer:
            if self.settings.streaming:
                return LoopContainer(
                    env=self.settings.function_env(holder["url"]),
                    cwd=self.settings.app_dir.resolve(),
                    timeout=self.settings.timeout,
                    memory_mb=self.settings.memory_mb,
                    function_name=f"llamaws-{self.settings.table}",
                    log=self.log,
                    die_with_parent=True,
                    python=self.settings.python,
                )
            return RieContainer(
                self.settings.handler,
                env=self.settings.function_env(holder["url"]),
                cwd=self.settings.app_dir.resolve(),
                timeout=self.settings.timeout,
                memory_mb=self.settings.memory_mb,
                function_name=f"llamaws-{self.settings.table}",
                log=self.log,
                die_with_parent=True,
                python=self.settings.python,
            )

        self.pool = ContainerPool(make_container, self.settings.containers)
        self.invoker = AsyncInvoker(self.pool)
        holder["url"] = self.invoker.url
        self.invoker.start()
        self.sweeper = Sweeper(self.invoker, self.settings.sweep_interval).start()
        return self

    def stop(self) -> None:
        self.sweeper.stop()
        self.invoker.stop()
        self.pool.close()


def serve_lambda(
    settings: LambdaSettings,
    sock: socket.socket,
    *,
    host: str,
    port: int,
    log_level: str = "INFO",
    log_config: dict[str, Any] | None = None,
    extra_routes: Sequence[Any] = (),
) -> None:
    """Serve ``settings``'s function on ``sock`` until interrupted."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    service = LambdaService(settings)
    iam = None
    if settings.auth == "iam":
        from .auth import function_region
        from .sigv4 import SigV4Verifier

        iam = SigV4Verifier.from_environment(function_region(settings))
    frontend = LambdaFrontend(service, iam=iam)
    app: Any = frontend
    if extra_routes:
        app = Starlette(routes=[*extra_routes, Mount("", app=frontend)])
    config = uvicorn.Config(  # configures logging
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        log_config=log_config,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )
    service.start()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        service.stop()


def lambda_settings(
    *,
    app_dir: Path,
    deployment_name: str,
    dynamodb_endpoint: str | None,
    dynamodb_table: str | None,
    s3_bucket: str | None,
    containers: int,
    sweep_interval: float,
    timeout: float,
    python: str = sys.executable,
    auth: AuthMode = "key",
    streaming: bool | None = None,
) -> tuple[LambdaSettings, LocalEngine | None]:
    """Resolve the function's settings; start a local engine when no endpoint is given.

    ``streaming`` None: the app's ``[tool.llamaws] streaming`` (``LLAMAWS_STREAMING`` wins).
    """
    if streaming is None:
        streaming = resolve_streaming(
            resolve_deployment(app_dir), os.environ.get("LLAMAWS_STREAMING")
        )
    endpoint = dynamodb_endpoint or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or None
    engine: LocalEngine | None = None
    extra_env: dict[str, str] = {}
    if endpoint is None:
        engine = start_local_engine()
        endpoint = engine.endpoint
        extra_env.update(_DUMMY_CREDENTIALS)  # nothing reaches a real account
        s3_bucket = s3_bucket or f"llamaws-{deployment_name}-spill"
        for name, value in _DUMMY_CREDENTIALS.items():
            os.environ.setdefault(name, value)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    extra_env.setdefault("AWS_DEFAULT_REGION", region)
    extra_env.setdefault("AWS_REGION", region)
    settings = LambdaSettings(
        app_dir=app_dir,
        table=dynamodb_table or f"llamaws-{deployment_name}",
        dynamodb_endpoint=endpoint,
        s3_bucket=s3_bucket,
        containers=containers,
        sweep_interval=sweep_interval,
        timeout=timeout,
        extra_env=extra_env,
        python=python,
        auth=auth,
        streaming=streaming,
    )
    return settings, engine
