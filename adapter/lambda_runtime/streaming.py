"""The streaming runtime loop: HTTP responses streamed through Lambda's Runtime API.

Lambda's managed Python runtime (``awslambdaric``) posts each response whole. This loop
takes its place (``python -m llamaws.adapter.lambda_runtime.streaming``, started by the
``exec_wrapper`` script named in ``AWS_LAMBDA_EXEC_WRAPPER``, as Lambda Web Adapter is):
it polls the Runtime API (``AWS_LAMBDA_RUNTIME_API``) itself and, per invocation,

- **HTTP events** (a Function URL in ``RESPONSE_STREAM`` mode): runs the ASGI app on the
  container's loop and posts its response in streaming mode as it is produced: a chunked
  POST of content type ``application/vnd.awslambda.http-integration-response`` whose body
  is the JSON prelude ``{"statusCode", "headers", "cookies"}`` (sent on
  ``http.response.start``), 8 NUL bytes, then one flushed chunk per
  ``http.response.body``. An error before the first byte goes to ``/error`` (the URL
  answers 502); after it, to the trailers ``Lambda-Runtime-Function-Error-Type`` /
  ``-Body`` (the URL cuts the response).
- **every other event** (``continue``, ``sweep``, …): :meth:`Container.invoke` as under
  ``awslambdaric``, its JSON result posted whole.

The container (loop, app, lifespan) is built once, on the first invocation, exactly as
by :mod:`llamaws.adapter.handler`; the invocation's deadline and the end-of-invocation
hand-off are :meth:`Container.invoke`'s. The stream's last chunk is posted after the
hand-off, so nothing of a run is running when the next ``/next`` freezes the container.
Standard library only: ``http.client`` for the blocking calls, asyncio streams for the
streamed response.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import Message

    from .container import Container

__all__ = [
    "PRELUDE_CONTENT_TYPE",
    "PRELUDE_DELIMITER",
    "RuntimeApi",
    "StreamedResponse",
    "is_http_event",
    "main",
    "prelude",
]

logger = logging.getLogger("llamaws.streaming")

API_VERSION = "2018-06-01"
PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
PRELUDE_DELIMITER = b"\x00" * 8
ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY = "Lambda-Runtime-Function-Error-Body"
_NOT_IN_PRELUDE = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive"))
"""The stream's framing is Lambda's: a length or hop-by-hop header of the app's would lie."""


@dataclass(frozen=True)
class Invocation:
    """One event from ``/runtime/invocation/next``."""

    request_id: str
    deadline_ms: int
    function_arn: str
    trace_id: str | None
    body: bytes


@dataclass
class Context:
    """Lambda's context object, as far as the handler and Mangum use it."""

    aws_request_id: str
    deadline_ms: int
    invoked_function_arn: str
    function_name: str = field(
        default_factory=lambda: os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    )
    function_version: str = field(
        default_factory=lambda: os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    )
    memory_limit_in_mb: str = field(
        default_factory=lambda: os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    )

    def get_remaining_time_in_millis(self) -> int:
        return max(self.deadline_ms - int(time.time() * 1000), 0)


class RuntimeApi:
    """The blocking calls to the Runtime API (``next``, a whole response, errors)."""

    def __init__(self, address: str) -> None:
        self.address = address
        host, _, port = address.rpartition(":")
        self._host, self._port = host, int(port)
        self._connection = http.client.HTTPConnection(self._host, self._port, timeout=None)

    def next(self) -> Invocation:
        """Wait for the next invocation (the container is frozen in here between them)."""
        response = self._request("GET", f"/{API_VERSION}/runtime/invocation/next")
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"runtime API /next answered {response.status}: {body[:200]!r}")
        headers = response.headers
        return Invocation(
            request_id=headers["Lambda-Runtime-Aws-Request-Id"],
            deadline_ms=int(headers.get("Lambda-Runtime-Deadline-Ms") or 0),
            function_arn=headers.get("Lambda-Runtime-Invoked-Function-Arn", ""),
            trace_id=headers.get("Lambda-Runtime-Trace-Id"),
            body=body,
        )

    def respond(self, request_id: str, payload: bytes) -> None:
        """Post a whole (buffered) response."""
        self._post(f"invocation/{request_id}/response", payload, {})

    def error(self, request_id: str, error: BaseException | str) -> None:
        """Post a function error for the invocation (Lambda answers it as one)."""
        body = error_payload(error)
        self._post(
            f"invocation/{request_id}/error",
            json.dumps(body).encode(),
            {ERROR_TYPE: body["errorType"]},
        )

    def _post(self, path: str, payload: bytes, headers: Mapping[str, str]) -> None:
        response = self._request(
            "POST",
            f"/{API_VERSION}/runtime/{path}",
            payload,
            {"Content-Type": "application/json", **headers},
        )
        answer = response.read()
        if response.status >= 300:
            logger.error("runtime API %s answered %s: %r", path, response.status, answer[:300])

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        for attempt in (1, 2):
            try:
                self._connection.request(method, path, body=body, headers=dict(headers or {}))
                return self._connection.getresponse()
            except (ConnectionError, http.client.HTTPException):
                # A kept-alive connection the API closed meanwhile: one fresh try.
                self._connection.close()
                self._connection = http.client.HTTPConnection(self._host, self._port)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def error_payload(error: BaseException | str) -> dict[str, Any]:
    """Lambda's error shape: ``errorType``, ``errorMessage``, ``stackTrace``."""
    if isinstance(error, str):
        return {"errorType": "Runtime.Error", "errorMessage": error, "stackTrace": []}
    return {
        "errorType": type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def prelude(status: int, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The HTTP integration prelude of an ASGI response start.

    ``set-cookie`` values go to ``cookies`` (one each, as a Function URL expects);
    repeated other headers are joined with commas; the app's ``content-length`` and
    hop-by-hop headers are dropped (Lambda frames the stream).
    """
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "set-cookie":
            cookies.append(value)
        elif name in _NOT_IN_PRELUDE:
            continue
        elif name in joined:
            joined[name] = f"{joined[name]},{value}"
        else:
            joined[name] = value
    return {"statusCode": status, "headers": joined, "cookies": cookies}


class StreamedResponse:
    """One invocation's response, posted to the Runtime API as the app produces it.

    :meth:`send` is the ASGI ``send`` of the app; :meth:`fail` records an error of the
    app; :meth:`finish` ends the stream (with error trailers after a failure) and says
    whether anything was posted (when not, the caller posts the error to ``/error``).
    """

    def __init__(self, address: str, request_id: str) -> None:
        self.address = address
        self.request_id = request_id
        self.error: BaseException | None = None
        self.complete = False
        self.bytes_sent = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None

    @property
    def started(self) -> bool:
        return self._writer is not None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("the app started its response twice")
            await self._open()
            head = prelude(message["status"], list(message.get("headers") or []))
            await self._chunk(json.dumps(head).encode() + PRELUDE_DELIMITER)
        elif kind == "http.response.body":
            if not self.started or self.complete:
                raise RuntimeError("response body outside of a response")
            body = message.get("body", b"")
            if body:  # an empty chunk would end the stream
                await self._chunk(body)
                self.bytes_sent += len(body)
            if not message.get("more_body", False):
                self.complete = True

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error

    async def finish(self) -> bool:
        """End the stream (error trailers when the response is incomplete); False if unstarted."""
        writer, reader = self._writer, self._reader
        if writer is None or reader is None:
            return False
        try:
            if self.complete:
                writer.write(b"0\r\n\r\n")
            else:
                error = self.error or RuntimeError("the response ended before its last chunk")
                body = error_payload(error)
                encoded = base64.b64encode(json.dumps(body).encode()).decode()
                trailers = f"{ERROR_TYPE}: {body['errorType']}\r\n{ERROR_BODY}: {encoded}\r\n"
                writer.write(f"0\r\n{trailers}\r\n".encode())
            await writer.drain()
            status = await _read_status(reader)
            if status >= 300:
                logger.error("runtime API streamed response answered %s", status)
        finally:
            writer.close()
            self._writer = None
        return True

    async def _open(self) -> None:
        host, _, port = self.address.rpartition(":")
        self._reader, self._writer = await asyncio.open_connection(host, int(port))
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        path = f"/{API_VERSION}/runtime/invocation/{self.request_id}/response"
        self._writer.write(
            (
                f"POST {path} HTTP/1.1\r\n"
                f"Host: {self.address}\r\n"
                "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
                f"Content-Type: {PRELUDE_CONTENT_TYPE}\r\n"
                "Transfer-Encoding: chunked\r\n"
                f"Trailer: {ERROR_TYPE}, {ERROR_BODY}\r\n"
                "\r\n"
            ).encode("latin-1")
        )

    async def _chunk(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(b"%X\r\n%b\r\n" % (len(data), data))
        await self._writer.drain()


async def _read_status(reader: asyncio.StreamReader) -> int:
    """The status of the Runtime API's answer (its headers and body are read and dropped)."""
    status_line = await reader.readline()
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    if length:
        await reader.readexactly(length)
    return status


def is_http_event(event: object) -> bool:
    """A Function URL / API Gateway / ALB request (streamed); anything else is not."""
    if not isinstance(event, Mapping):
        return False
    context = event.get("requestContext")
    return isinstance(context, Mapping) and ("http" in context or "httpMethod" in event)


def serve(runtime: RuntimeApi, invocation: Invocation, container: Container) -> None:
    """Serve one invocation on a built container and post its answer."""
    from ..log_context import set_request_id

    set_request_id(invocation.request_id)
    event = json.loads(invocation.body)
    context = Context(invocation.request_id, invocation.deadline_ms, invocation.function_arn)
    if not is_http_event(event):
        result = container.invoke(event, context)
        runtime.respond(invocation.request_id, json.dumps(result).encode())
        return
    stream = StreamedResponse(runtime.address, invocation.request_id)
    try:
        container.invoke(event, context, stream)
    except Exception as exc:  # the hand-off itself failed: the answer says so
        logger.exception("invocation %s failed", invocation.request_id)
        stream.fail(exc)
    if not container.loop.run_until_complete(stream.finish()):
        runtime.error(invocation.request_id, stream.error or "the app ended without a response")


def main() -> None:
    """Poll the Runtime API forever (the process is the execution environment's runtime)."""
    level = logging.getLevelName((os.environ.get("AWS_LAMBDA_LOG_LEVEL") or "WARNING").upper())
    logging.basicConfig(  # awslambdaric's defaults: WARNING unless the function sets a level
        level=level if isinstance(level, int) else logging.WARNING,
        format="[%(levelname)s]\t%(asctime)s\t%(name)s\t%(message)s",
        stream=sys.stdout,
    )
    if (os.environ.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON":
        from ..log_context import JsonLineFormatter  # lines with handler_id / run_id

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLineFormatter())
    runtime = RuntimeApi(os.environ["AWS_LAMBDA_RUNTIME_API"])
    container: Container | None = None
    while True:
        invocation = runtime.next()
        if invocation.trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = invocation.trace_id
        try:
            if container is None:  # the cold start, as in llamaws.adapter.handler
                from .container import Container

                container = Container.from_env()
            serve(runtime, invocation, container)
        except Exception as exc:
            logger.exception("invocation %s failed", invocation.request_id)
            runtime.error(invocation.request_id, exc)


if __name__ == "__main__":
    main()
