"""A small Lambda service for in-process tests of the handler's execution model.

Each :class:`LocalContainer` is one ``Container`` (its own loop and app, the app's
modules imported afresh) whose invocations run one at a time on its own thread.
Asynchronous self-invocations go into a queue that a dispatcher hands to a free
container, like Lambda's event queue. HTTP requests become API Gateway HTTP API
v2 events, the shape a Function URL delivers.
"""

from __future__ import annotations

import base64
import json
import queue
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from llamaws.adapter.lambda_runtime.container import Container, ContainerSettings


class FakeContext:
    """Lambda's context object: only the remaining time is used."""

    def __init__(self, budget_seconds: float) -> None:
        self._deadline = time.monotonic() + budget_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


class QueueInvoker:
    """The container's invoker: queues payloads for the service's dispatcher."""

    def __init__(self, service: LambdaService) -> None:
        self.service = service

    async def invoke_async(self, payload: Mapping[str, Any]) -> None:
        self.service.enqueue(dict(payload))


class LocalContainer:
    """One container: invocations serialised on a single thread."""

    def __init__(self, settings: ContainerSettings, invoker: QueueInvoker) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.busy = threading.Lock()
        purge_app_modules(settings.app_dir)
        self.container: Container = self.executor.submit(Container, settings, invoker).result()

    def invoke(self, event: Mapping[str, Any], budget: float = 30.0) -> Future[dict[str, Any]]:
        def run() -> dict[str, Any]:
            with self.busy:
                return self.container.invoke(event, FakeContext(budget))

        return self.executor.submit(run)

    def close(self) -> None:
        self.executor.submit(self.container.loop.stop).result()
        self.executor.shutdown(wait=True)


class LambdaService:
    """Containers plus the asynchronous-invocation queue and its dispatcher."""

    def __init__(
        self,
        settings: ContainerSettings,
        containers: int = 1,
        budget: float = 30.0,
        *,
        dispatch: bool = True,
    ) -> None:
        self.budget = budget
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.invoker = QueueInvoker(self)
        self.containers = [LocalContainer(settings, self.invoker) for _ in range(containers)]
        self.async_results: list[dict[str, Any]] = []
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True)
        if dispatch:
            self._dispatcher.start()
        else:
            self._stop.set()

    def drain(self) -> list[dict[str, Any]]:
        """Run the queued asynchronous invocations here, one by one (``dispatch=False``)."""
        results = []
        while not self.queue.empty():
            payload = self.queue.get()
            results.append(self.containers[0].invoke(payload, self.budget).result())
            with self._lock:
                self._in_flight -= 1
        return results

    def enqueue(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self._in_flight += 1
        self.queue.put(payload)

    def idle(self) -> bool:
        """No queued or running asynchronous invocation."""
        with self._lock:
            return self._in_flight == 0

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        container: int = 0,
        budget: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request as a v2 event on ``container``: (status, headers, body)."""
        event = http_event(method, path, json_body=json_body, params=params, headers=headers)
        response = self.containers[container].invoke(event, budget or self.budget).result()
        body = response.get("body") or ""
        raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
        return response["statusCode"], dict(response.get("headers") or {}), raw

    def close(self) -> None:
        self._stop.set()
        if self._dispatcher.is_alive():
            self._dispatcher.join(timeout=5)
        for container in self.containers:
            container.close()

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            try:
                payload = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            target = self._free_container()
            future = target.invoke(payload, self.budget)
            future.add_done_callback(self._finished)

    def _free_container(self) -> LocalContainer:
        while True:
            for container in self.containers:
                if not container.busy.locked():
                    return container
            time.sleep(0.01)

    def _finished(self, future: Future[dict[str, Any]]) -> None:
        with self._lock:
            self._in_flight -= 1
            try:
                self.async_results.append(future.result())
            except Exception as exc:  # surfaced by tests that look at results
                self.async_results.append({"error": repr(exc)})


def moto_settings(app_dir: Path, endpoint: str, table: str, **overrides: Any) -> ContainerSettings:
    """A container's settings on the tests' moto server: the table created on first use,
    a spill bucket, auth off (tested in tests/test_auth.py) unless ``overrides`` say."""
    return ContainerSettings(
        app_dir=app_dir,
        table=table,
        dynamodb_endpoint=endpoint,
        s3_endpoint=endpoint,
        s3_bucket="llamaws-spill",
        create_table=True,
        **{"auth": "none", **overrides},
    )


def http_event(
    method: str,
    path: str,
    *,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (v2.0) event, built like ``llamaws serve --lambda`` does."""
    from llamaws.local.lambda_events import http_event as event_of

    body = json.dumps(json_body).encode() if json_body is not None else b""
    all_headers = {"host": "lambda.test", "user-agent": "pytest", **(headers or {})}
    if json_body is not None:
        all_headers.setdefault("content-type", "application/json")
        all_headers["content-length"] = str(len(body))
    return event_of(method, path, urlencode(params or {}), list(all_headers.items()), body)


def purge_app_modules(app_dir: Path) -> None:
    """Forget the app's modules (by top-level name) so the next import builds new workflows."""
    src = app_dir / "src"
    root = src if src.is_dir() else app_dir
    tops = {p.stem for p in root.iterdir() if p.is_dir() or p.suffix == ".py"}
    for name in list(sys.modules):
        if name.split(".")[0] in tops:
            del sys.modules[name]
