"""A stand-in for Lambda's asynchronous-invocation queue that runs nothing.

The function's self-invocations (``LLAMAWS_ASYNC_INVOKE_URL``) are POSTed here and
recorded; tests and benchmarks then invoke them by hand, one by one.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .support import wait_until

__all__ = ["CapturedInvocations"]


class CapturedInvocations:
    """Records what the function sends (answers 202)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        captured = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                event = json.loads(self.rfile.read(length))
                with captured._lock:
                    captured.events.append(event)
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/invoke"

    def next_continue(self, handler_id: str, start: int = 0, timeout: float = 10.0) -> int:
        """Index (from ``start``) of the first continue event for ``handler_id``."""

        def find() -> int | None:
            with self._lock:
                for index, event in enumerate(self.events[start:], start):
                    body = event.get("llamaws", {})
                    if body.get("kind") == "continue" and body.get("handler_id") == handler_id:
                        return index + 1  # truthy even for the first
            return None

        return wait_until(find, timeout=timeout, what=f"a continue for {handler_id}") - 1

    def take(self, handler_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first pending continue event for ``handler_id``, removed from the list."""
        index = self.next_continue(handler_id, timeout=timeout)
        with self._lock:
            return self.events.pop(index)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
