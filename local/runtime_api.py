"""A local Lambda Runtime API that hands streamed responses over as they arrive.

The Runtime Interface Emulator accepts a streamed response but delivers it whole, so it
cannot show streaming. This module plays Lambda's side of the Runtime API (``2018-06-01``)
for one execution environment, the way a Function URL in ``RESPONSE_STREAM`` mode uses it:

- :class:`LocalRuntimeApi`: the HTTP server at ``AWS_LAMBDA_RUNTIME_API``.
  ``GET /runtime/invocation/next`` waits for an invocation; ``POST …/<id>/response`` is
  either whole (``Content-Length``) or streamed (``Lambda-Runtime-Function-Response-Mode:
  streaming``, chunked): the prelude (``application/vnd.awslambda.http-integration-response``:
  JSON, then 8 NUL bytes) and then each chunk are handed over as they arrive, the error
  trailers (``Lambda-Runtime-Function-Error-Type`` / ``-Body``) at the end;
  ``POST …/<id>/error`` and ``POST /runtime/init/error`` are function errors.
- :class:`LoopContainer`: the execution environment: that API plus the runtime process,
  started on the first invocation (a cold start) with the function's environment. It runs
  the function's ``AWS_LAMBDA_EXEC_WRAPPER`` (``exec_wrapper``, which starts the streaming
  runtime loop) with the given interpreter, so it does not care how that interpreter was
  set up. The function timeout kills the runtime (the next invocation cold-starts), a
  runtime that dies fails its invocation. :meth:`LoopContainer.open` gives an invocation's
  answer piece by piece (:class:`Streamed`); :meth:`LoopContainer.invoke` waits for all of
  it (an :class:`~llamaws.local.rie.Invocation`, like :class:`~llamaws.local.rie.RieContainer`).

An invocation ends (and the container is free again) when the runtime has posted its
whole answer, whether or not anyone still reads it: as in Lambda, a client that goes
away does not stop a streaming function.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Literal

from llamaws.adapter.errors import LlamawsError

from .rie import Invocation, set_parent_death_signal

__all__ = [
    "PRELUDE_CONTENT_TYPE",
    "LocalRuntimeApi",
    "LoopContainer",
    "Piece",
    "Streamed",
    "exec_wrapper",
]

PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
_DELIMITER = b"\x00" * 8
_ERROR_TYPE = "lambda-runtime-function-error-type"
_ERROR_BODY = "lambda-runtime-function-error-body"
_PATH = re.compile(r"^/2018-06-01/runtime/(?:invocation/(?P<id>[^/]+)/(?P<what>response|error)"
                   r"|(?P<init>init/error))$")  # fmt: skip

PieceKind = Literal["head", "chunk", "end", "whole", "error"]


def exec_wrapper() -> Path:
    """The ``exec_wrapper`` script shipped with ``llamaws.adapter.lambda_runtime``."""
    import llamaws.adapter.lambda_runtime as package

    return Path(package.__file__).resolve().parent / "exec_wrapper"


@dataclass(frozen=True)
class Piece:
    """One thing the runtime posted for an invocation, stamped when it arrived."""

    kind: PieceKind
    data: bytes = b""
    """``chunk``: body bytes; ``whole``: the buffered response; ``error``: the error body."""
    prelude: Mapping[str, Any] | None = None
    """``head``: the HTTP integration prelude (None for a stream without one)."""
    error_type: str | None = None
    """``error``, or ``end`` with error trailers: the error's type."""
    at: float = field(default_factory=time.monotonic)


@dataclass
class Streamed:
    """An invocation's answer, piece by piece: a ``head`` then ``chunk``\\ s then ``end``,
    or ``whole``, or ``error`` (at any point: a timeout or a dead runtime)."""

    request_id: str
    event: bytes
    deadline_ms: int
    pieces: queue.Queue[Piece] = field(default_factory=queue.Queue)
    finished: threading.Event = field(default_factory=threading.Event)
    _on_done: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_piece(self, timeout: float | None = None) -> Piece:
        """The next piece (blocks; ``queue.Empty`` after ``timeout``)."""
        return self.pieces.get(timeout=timeout)

    def push(self, piece: Piece) -> bool:
        """Hand a piece over; False once the invocation has finished."""
        with self._lock:
            if self.finished.is_set():
                return False
            self.pieces.put(piece)
            if piece.kind in ("end", "whole", "error"):
                self.finished.set()
                callbacks, self._on_done = self._on_done, []
            else:
                return True
        for callback in callbacks:
            callback()
        return True

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the invocation has finished (at once if it has)."""
        with self._lock:
            if not self.finished.is_set():
                self._on_done.append(callback)
                return
        callback()

    def collect(self) -> list[Piece]:
        """Every piece up to the last (blocks until the invocation has finished)."""
        pieces = [self.next_piece()]
        while pieces[-1].kind not in ("end", "whole", "error"):
            pieces.append(self.next_piece())
        return pieces


class LocalRuntimeApi:
    """The Runtime API of one execution environment (see module doc)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._waiting: queue.Queue[Streamed | None] = queue.Queue()
        self.current: Streamed | None = None
        self.init_errors: list[bytes] = []
        self._server = _Server((host, 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="lambda-runtime-api", daemon=True
        )

    @property
    def address(self) -> str:
        """``host:port``: the runtime's ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> LocalRuntimeApi:
        self._thread.start()
        return self

    def give(self, invocation: Streamed) -> None:
        """Queue ``invocation`` for the runtime's next ``/next``."""
        self._waiting.put(invocation)

    def take(self) -> Streamed | None:
        invocation = self._waiting.get()
        self.current = invocation
        return invocation

    def find(self, request_id: str) -> Streamed | None:
        current = self.current
        return current if current is not None and current.request_id == request_id else None

    def stop(self) -> None:
        self._waiting.put(None)  # a runtime waiting in /next is let go
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a runtime killed mid-call
            super().handle_error(request, client_address)


def _handler_for(api: LocalRuntimeApi) -> type[BaseHTTPRequestHandler]:
    class RuntimeHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path != "/2018-06-01/runtime/invocation/next":
                self._answer(404, {"errorMessage": "not found", "errorType": "NotFound"})
                return
            invocation = api.take()
            if invocation is None:  # the environment is stopping
                self._answer(500, {"errorMessage": "stopping", "errorType": "Stopping"})
                return
            if _closed(self.connection):  # a runtime that died while waiting here
                api.give(invocation)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(invocation.event)))
            self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(invocation.deadline_ms))
            self.send_header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:000000000000:function:llamaws-local",
            )
            self.send_header("Lambda-Runtime-Trace-Id", f"Root=1-{uuid.uuid4().hex[:24]}")
            self.end_headers()
            self.wfile.write(invocation.event)

        def do_POST(self) -> None:
            matched = _PATH.match(self.path)
            if matched is None:
                self._answer(404, {"errorMessage": "not found", "errorType": "NotFound"})
                return
            if matched["init"]:
                api.init_errors.append(self._read_whole())
                if api.current is not None:
                    api.current.push(Piece("error", api.init_errors[-1], error_type="InitError"))
                self._answer(202, {"status": "OK"})
                return
            invocation = api.find(matched["id"])
            if invocation is None:
                self._read_whole()
                self._answer(400, {"errorMessage": "unknown request id",
                                   "errorType": "InvalidRequestID"})  # fmt: skip
                return
            if matched["what"] == "error":
                body = self._read_whole()
                kind = self.headers.get(_ERROR_TYPE) or "Unhandled"
                invocation.push(Piece("error", body, error_type=kind))
            elif "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self._read_stream(invocation)
            else:
                invocation.push(Piece("whole", self._read_whole()))
            self._answer(202, {"status": "OK"})

        def _read_stream(self, invocation: Streamed) -> None:
            with_prelude = (self.headers.get("Content-Type") or "").startswith(
                PRELUDE_CONTENT_TYPE
            ) and (self.headers.get("Lambda-Runtime-Function-Response-Mode") == "streaming")
            pending = b""
            headed = not with_prelude
            if headed:
                invocation.push(Piece("head"))
            for chunk in self._chunks():
                if headed:
                    invocation.push(Piece("chunk", chunk))
                    continue
                pending += chunk
                end = pending.find(_DELIMITER)
                if end < 0:
                    continue
                prelude = json.loads(pending[:end])
                invocation.push(Piece("head", prelude=prelude))
                headed = True
                if pending[end + len(_DELIMITER) :]:
                    invocation.push(Piece("chunk", pending[end + len(_DELIMITER) :]))
            trailers = self._trailers()
            if not headed:
                invocation.push(Piece("error", b'{"errorMessage": "no prelude"}',
                                      error_type="Runtime.InvalidPrelude"))  # fmt: skip
                return
            error_type = trailers.get(_ERROR_TYPE)
            body = trailers.get(_ERROR_BODY)
            data = base64.b64decode(body) if body else b""
            invocation.push(Piece("end", data, error_type=error_type or None))

        def _chunks(self) -> Iterator[bytes]:
            while True:
                size_line = self.rfile.readline()
                if not size_line:
                    raise ConnectionError("the runtime closed its response stream")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    return
                data = self.rfile.read(size)
                self.rfile.readline()  # the CRLF after the data
                yield data

        def _trailers(self) -> dict[str, str]:
            found: dict[str, str] = {}
            while True:
                line = self.rfile.readline()
                if line in (b"\r\n", b"\n", b""):
                    return found
                name, _, value = line.decode("latin-1").partition(":")
                found[name.strip().lower()] = value.strip()

        def _read_whole(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return RuntimeHandler


@dataclass
class LoopContainer:
    """One execution environment running the streaming runtime loop (see module doc).

    ``env`` is added to this process's environment (the function's configuration);
    ``cwd`` is the app's folder, as in the bundle. One invocation at a time.
    """

    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = Path(".")
    timeout: float = 300.0
    """The function timeout, whole seconds."""
    function_name: str = "llamaws-local"
    memory_mb: int = 1024
    python: str = sys.executable
    """The interpreter the runtime runs on (the wrapper receives it as Lambda passes it)."""
    command: Sequence[str] | None = None
    """The runtime's command; default ``sh exec_wrapper <python> -m awslambdaric …``."""
    log: IO[bytes] | int | None = None
    die_with_parent: bool = False
    """Linux: the runtime gets SIGTERM when the thread that started it ends."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    invocations: int = field(default=0, init=False)
    cold_starts: int = field(default=0, init=False)
    api: LocalRuntimeApi | None = field(default=None, init=False)
    _current: Streamed | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def busy(self) -> bool:
        current = self._current
        return current is not None and not current.finished.is_set()

    def start(self) -> LoopContainer:
        """Start the Runtime API (the runtime starts with the first invocation)."""
        if self.api is None:
            self.api = LocalRuntimeApi().start()
        return self

    def open(self, event: Mapping[str, Any] | bytes) -> Streamed:
        """Start an invocation; its answer comes piece by piece (see :class:`Streamed`)."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        with self._lock:
            if self.api is None:
                raise LlamawsError("the Lambda container is not started")
            if self.busy:
                raise LlamawsError("the Lambda container is busy with another invocation")
            started = time.time()
            invocation = Streamed(
                request_id=str(uuid.uuid4()),
                event=body,
                deadline_ms=int((started + self.timeout) * 1000),
            )
            self._current = invocation
            self.invocations += 1
            if self.process is None or self.process.poll() is not None:
                self._start_runtime()
            self.api.give(invocation)
        timer = threading.Timer(self.timeout, self._time_out, args=(invocation,))
        timer.daemon = True
        timer.start()
        invocation.when_done(timer.cancel)
        return invocation

    def invoke(self, event: Mapping[str, Any] | bytes) -> Invocation:
        """Invoke and wait for the whole answer (a streamed one is returned raw)."""
        started = time.monotonic()
        pieces = self.open(event).collect()
        duration = time.monotonic() - started
        last = pieces[-1]
        if last.kind == "error":
            return Invocation(200, _error_body(last), duration)
        if last.kind == "whole":
            return Invocation(200, last.data, duration)
        head = pieces[0].prelude
        raw = json.dumps(head).encode() + _DELIMITER if head is not None else b""
        raw += b"".join(piece.data for piece in pieces if piece.kind == "chunk")
        return Invocation(200, raw, duration)

    def alive(self) -> bool:
        return self.api is not None

    def stop(self) -> None:
        """Stop the runtime (and anything it started) and the API."""
        self._kill_runtime()
        current = self._current
        if current is not None:
            current.push(Piece("error", b'{"errorMessage": "the container stopped"}',
                               error_type="Runtime.Stopped"))  # fmt: skip
        api, self.api = self.api, None
        if api is not None:
            api.stop()

    def __enter__(self) -> LoopContainer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the runtime process -------------------------------------------------------------

    def _start_runtime(self) -> None:
        assert self.api is not None
        env = {
            **os.environ,
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(max(1, int(self.timeout))),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "LAMBDA_TASK_ROOT": str(self.cwd.resolve()),
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        env.setdefault("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1"))
        # As Lambda starts a runtime with AWS_LAMBDA_EXEC_WRAPPER set: the wrapper gets
        # the interpreter and the managed runtime's own arguments.
        managed = [self.python, "-m", "awslambdaric", "llamaws.adapter.handler.handler"]
        command = list(self.command or ["/bin/sh", str(exec_wrapper()), *managed])
        process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT if self.log is not None else None,
            start_new_session=True,
            preexec_fn=set_parent_death_signal if self.die_with_parent else None,
        )
        self.process = process
        self.cold_starts += 1
        threading.Thread(
            target=self._watch, args=(process,), name="lambda-runtime-watch", daemon=True
        ).start()

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        current = self._current
        if current is not None and self.process is process:
            message = {"errorMessage": f"Runtime exited with error: exit status {code}",
                       "errorType": "Runtime.ExitError"}  # fmt: skip
            current.push(
                Piece("error", json.dumps(message).encode(), error_type="Runtime.ExitError")
            )

    def _time_out(self, invocation: Streamed) -> None:
        if invocation.finished.is_set():
            return
        self._kill_runtime()  # as Lambda does: the next invocation cold-starts
        message = f"Task timed out after {self.timeout:.2f} seconds"
        invocation.push(Piece("error", message.encode(), error_type="Timeout"))

    def _kill_runtime(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def _closed(connection: Any) -> bool:
    """Whether the peer of ``connection`` has gone (readable, with nothing to read)."""
    import select
    import socket

    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _error_body(piece: Piece) -> bytes:
    """An error piece as the RIE answers it: Lambda's error object (or the timeout text)."""
    if piece.error_type == "Timeout":
        return piece.data
    try:
        payload = json.loads(piece.data or b"{}")
    except ValueError:
        payload = {"errorMessage": piece.data.decode("utf-8", "replace")}
    if not isinstance(payload, dict):
        payload = {"errorMessage": str(payload)}
    payload.setdefault("errorType", piece.error_type or "Unhandled")
    payload.setdefault("errorMessage", "")
    return json.dumps(payload).encode()
