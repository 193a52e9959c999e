"""One Lambda container: its event loop, the app, the store and the run driver.

Built once per process (cold start) from the environment; every invocation then
runs on the same persistent loop: the request (Mangum, ``lifespan="off"``, or streamed
to a :class:`ResponseStream` by the streaming runtime loop) or the internal event, and
finally :meth:`RunDriver.hand_off`, so that no run is left in memory when the container
is frozen.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload

from .. import log_context
from ..config import resolve_auth, resolve_deployment, resolve_environment
from ..errors import ConfigError
from ..secrets import load_app_secrets
from .events import parse_internal_event
from .invoker import Invoker, invoker_from_env

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message

__all__ = [
    "STREAMING_SCOPE_KEY",
    "Container",
    "ContainerSettings",
    "LambdaContext",
    "ResponseStream",
]

logger = logging.getLogger("llamaws.lambda")

STREAMING_SCOPE_KEY = "llamaws.streaming"
"""Set (True) in the ASGI scope of a request whose response is streamed to the client."""

_deadline: ContextVar[float] = ContextVar("llamaws_deadline", default=float("inf"))


class LambdaContext(Protocol):
    """The part of Lambda's context object llamaws uses."""

    def get_remaining_time_in_millis(self) -> int: ...


class ResponseStream(Protocol):
    """Where the streaming runtime loop takes a response as the app produces it."""

    async def send(self, message: Message) -> None:
        """The app's ASGI ``send``."""

    def fail(self, error: BaseException) -> None:
        """The app raised ``error`` while answering."""


@dataclass(frozen=True)
class ContainerSettings:
    """What the handler reads from its environment."""

    app_dir: Path
    table: str
    s3_bucket: str | None = None
    dynamodb_endpoint: str | None = None
    s3_endpoint: str | None = None
    create_table: bool = False
    lease_seconds: float = 30.0
    safety_margin_seconds: float = 3.0
    auth: str | None = None
    """``LLAMAWS_AUTH`` (set by the stack): overrides ``[tool.llamaws] auth``."""
    auth_cache_seconds: float = 30.0
    """How long a container trusts what it read of a key or session (revocation delay)."""
    session_seconds: int = 12 * 3600
    """Lifetime of a session cookie from the sign-in page."""
    stream_seconds: float = 120.0
    """Streamed responses: how long an event stream stays open at most (``retry:`` then)."""
    heartbeat_seconds: float = 10.0
    """Streamed responses: an idle event stream gets a heartbeat this often."""
    event_poll_seconds: float = 0.1
    """An open event stream looks for new events in the table at least this often."""
    snapshot_every: int = 32
    """A run's context is snapshotted once this many ticks piled up (0: never; see
    ``adapter/snapshots.py``)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ContainerSettings:
        table = environ.get("LLAMAWS_TABLE")
        if not table:
            raise ConfigError(
                "LLAMAWS_TABLE is not set",
                hint="Set it to the deployment's DynamoDB table (the stack sets it).",
            )
        app_dir = Path(environ.get("LLAMAWS_APP_DIR") or environ.get("LAMBDA_TASK_ROOT") or ".")
        return cls(
            app_dir=app_dir,
            table=table,
            s3_bucket=environ.get("LLAMAWS_S3_BUCKET") or None,
            dynamodb_endpoint=environ.get("AWS_ENDPOINT_URL_DYNAMODB") or None,
            s3_endpoint=environ.get("AWS_ENDPOINT_URL_S3") or None,
            create_table=environ.get("LLAMAWS_CREATE_TABLE") == "1",
            lease_seconds=float(environ.get("LLAMAWS_LEASE_SECONDS", "30")),
            auth=environ.get("LLAMAWS_AUTH") or None,
            auth_cache_seconds=float(environ.get("LLAMAWS_AUTH_CACHE_SECONDS", "30")),
            session_seconds=int(environ.get("LLAMAWS_SESSION_SECONDS", str(12 * 3600))),
            stream_seconds=float(environ.get("LLAMAWS_STREAM_SECONDS", "120")),
            heartbeat_seconds=float(environ.get("LLAMAWS_HEARTBEAT_SECONDS", "10")),
            event_poll_seconds=float(environ.get("LLAMAWS_EVENT_POLL_SECONDS", "0.1")),
            snapshot_every=int(environ.get("LLAMAWS_SNAPSHOT_EVERY", "32")),
        )


class Container:
    """Serves invocations; built once per process."""

    def __init__(self, settings: ContainerSettings, invoker: Invoker) -> None:
        from mangum import Mangum
        from workflows.plugins.basic import BasicRuntime

        from ..app import HEALTH_PATHS, create_app
        from ..loader import load_workflows
        from ..runtime_stack import RetainRunsDecorator
        from ..snapshots import SnapshotTickPersistence
        from ..store import DynamoSettings, DynamoWorkflowStore
        from ..upstream import service_of
        from .coordination import Coordination, MarkingInvoker
        from .driver import RunDriver
        from .http import LambdaHttp, use_inbox_delivery
        from .quiescence import QuiescenceDecorator

        self.settings = settings
        log_context.install()  # log lines carry handler_id / run_id (JSON in Lambda)
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

        deployment = resolve_deployment(settings.app_dir)
        auth = resolve_auth(deployment, settings.auth)
        # The env files' values come from SSM / Secrets Manager in the cloud (the
        # files are not bundled) and win over the config's ``env``, as files do locally.
        secrets = load_app_secrets(os.environ)
        os.environ.update(secrets)
        os.environ.update(
            {
                k: v
                for k, v in resolve_environment(deployment, os.environ).items()
                if k not in secrets
            }
        )
        store = DynamoWorkflowStore(
            DynamoSettings(
                table_name=settings.table,
                endpoint_url=settings.dynamodb_endpoint,
                s3_bucket=settings.s3_bucket,
                s3_endpoint_url=settings.s3_endpoint,
                poll_interval=settings.event_poll_seconds,
            )
        )
        if settings.create_table:
            store.create_resources()
        self.retain = RetainRunsDecorator(BasicRuntime())
        persistence = SnapshotTickPersistence(self.retain, store=store)
        persistence.snapshot_every = settings.snapshot_every
        quiescence = QuiescenceDecorator(persistence, store)
        self.app = create_app(
            deployment,
            load_workflows(deployment),
            store,
            lifespan=False,
            runtime=quiescence,
            wait_sweep_interval=None,  # the sweep invocation expires wait tokens
        )
        server = self.app.server
        coordination = Coordination(
            store.table,
            owner=f"{os.environ.get('AWS_LAMBDA_LOG_STREAM_NAME', 'local')}/{uuid.uuid4().hex}",
            lease_seconds=settings.lease_seconds,
        )
        invoker = MarkingInvoker(invoker, coordination)  # a lost continue: swept when due
        self.driver = RunDriver(
            server=server,
            store=store,
            coordination=coordination,
            invoker=invoker,
            retain=self.retain,
            persistence=persistence,
            quiescence=quiescence,
            cancel=service_of(server).cancel_handler,
        )
        use_inbox_delivery(server, self.driver, coordination, invoker)
        self.asgi: ASGIApp = LambdaHttp(
            self.app.app,
            base_path=deployment.base_path,
            budget=_budget,
            live_stream_seconds=settings.stream_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
        )
        if auth != "none":
            from ..auth import AuthGate
            from ..keys import KeyStore

            self.asgi = AuthGate(
                self.asgi,
                mode=auth,
                base_path=deployment.base_path,
                keys=KeyStore(store.table, cache_seconds=settings.auth_cache_seconds)
                if auth == "key"
                else None,
                open_paths=(*HEALTH_PATHS, f"{deployment.base_path}/health"),
                session_seconds=settings.session_seconds,
            )
        self.mangum = Mangum(self.asgi, lifespan="off")
        self.loop.run_until_complete(self.app.start())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Container:
        env = os.environ if environ is None else environ
        return cls(ContainerSettings.from_env(env), invoker_from_env(env))

    @overload
    def invoke(self, event: Mapping[str, Any], context: LambdaContext | None) -> dict[str, Any]: ...

    @overload
    def invoke(
        self, event: Mapping[str, Any], context: LambdaContext | None, stream: ResponseStream
    ) -> dict[str, Any] | None: ...

    def invoke(
        self,
        event: Mapping[str, Any],
        context: LambdaContext | None,
        stream: ResponseStream | None = None,
    ) -> dict[str, Any] | None:
        """Handle one invocation; returns once nothing of any run is left running.

        With ``stream`` (the streaming runtime loop), an HTTP event's response goes to
        it as the app produces it and ``None`` is returned; internal events ignore it.
        """
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0
        margin = min(self.settings.safety_margin_seconds, remaining * 0.2)
        deadline = time.monotonic() + remaining - margin
        token = _deadline.set(deadline)
        ids = log_context.bind(log_context.handler_id_of_event(event))
        asyncio.set_event_loop(self.loop)
        try:
            internal = parse_internal_event(event)
            result: dict[str, Any] | None
            if internal is not None:
                result = self.loop.run_until_complete(self.driver.handle(internal, deadline))
            elif stream is not None:
                self.loop.run_until_complete(self._stream(event, context, stream))
                result = None
            else:
                result = self.mangum(dict(event), context)  # type: ignore[arg-type]
            self.loop.run_until_complete(self.driver.hand_off(deadline))
            return result
        finally:
            log_context.unbind(ids)
            _deadline.reset(token)

    async def _stream(
        self, event: Mapping[str, Any], context: LambdaContext | None, stream: ResponseStream
    ) -> None:
        """Run the app on an HTTP event, its response going to ``stream``."""
        request = self.mangum.infer(dict(event), context)  # type: ignore[arg-type]
        scope = request.scope
        scope[STREAMING_SCOPE_KEY] = True
        body = request.body
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect: Lambda tells none
            raise AssertionError("unreachable")

        try:
            await self.asgi(scope, receive, stream.send)
        except Exception as exc:
            logger.exception("the app failed answering %s %s", scope["method"], scope["path"])
            stream.fail(exc)


def _budget() -> float:
    """Seconds left in the current invocation, safety margin taken off."""
    return _deadline.get() - time.monotonic()
