"""The wait tokens of one deployment: issued by the run, ended by the token API.

:class:`WaitTokens` is what the rest of llamaws talks to:

- the runtime (:mod:`.runtime`) reports what runs do: a wait opened (a token is
  created and announced), the run consumed the awaited event itself, a waiter
  timed out, the run ended;
- the HTTP routes (:mod:`.routes`) call :meth:`~WaitTokens.success`,
  :meth:`~WaitTokens.failure`, :meth:`~WaitTokens.heartbeat`,
  :meth:`~WaitTokens.describe` and :meth:`~WaitTokens.open_waits`;
- the event delivery of ``POST /events`` (local and Lambda) wraps each send in
  :func:`consuming`, which completes the wait the event ends with one conditional
  write (the loser of a race gets 409 and changes nothing) and reopens it if the
  delivery fails;
- the sweep (:func:`expire_due`: the emulator's background task, the Lambda
  ``sweep`` invocation) times out waits past their deadlines.

A success is delivered through the server's own (overridden) ``send_event``: the
same durable path as ``POST /events``. A failure or timeout is delivered as a tick
through :mod:`.delivery`: a ``waiter_timeout`` for a ``ctx.wait_for_event`` wait
(the step raises :class:`~.events.WaitFailedError` / ``WaitTimedOutError``), a
:class:`~.events.WaitFailed` / ``WaitTimedOut`` event for an ``InputRequiredEvent``
wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llama_agents.client.protocol.serializable_events import (  # type: ignore[import-untyped]
    EventEnvelope,
    EventEnvelopeWithMetadata,
)
from llama_agents.server import AbstractWorkflowStore, HandlerQuery
from starlette.exceptions import HTTPException
from workflows.events import Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent
from workflows.runtime.types.results import AddWaiter, DeleteWaiter, StepWorkerResult
from workflows.runtime.types.step_id import StepId
from workflows.runtime.types.ticks import (
    TickAddEvent,
    TickStepResult,
    TickWaiterTimeout,
    WorkflowTick,
)

from ..upstream import (
    EventSendError,
    HandlerCompletedError,
    HandlerNotFoundError,
    served_workflow,
    service_of,
    step_configs,
)
from .config import WaitDefaults, deadline_seconds, event_attribute
from .delivery import LocalTicks, TickDelivery
from .events import (
    HEARTBEAT_TIMEOUT,
    TIMEOUT,
    WaitError,
    WaitFailed,
    WaitFailedError,
    WaitTimedOut,
    WaitTimedOutError,
    WaitTokenIssued,
)
from .stores import TokenConflict, TokenStore
from .tokens import (
    DeliveryFailed,
    InvalidEvent,
    TaskTimedOut,
    TokenRecord,
    WaitKind,
    WaitStatus,
    WaitTokenError,
    closed_error,
    iso_ms,
    new_token,
    parse_token,
)

if TYPE_CHECKING:
    from llama_agents.server import WorkflowServer
    from workflows import Workflow

__all__ = [
    "RunWaits",
    "WaitTokens",
    "consuming",
    "consuming_waits",
    "expire_due",
    "waits_of",
]

logger = logging.getLogger(__name__)

_claiming: ContextVar[TokenRecord | None] = ContextVar("llamaws_claiming", default=None)
"""The token a ``success`` call is delivering for (read by :meth:`WaitTokens.consuming`)."""

_by_server: weakref.WeakKeyDictionary[WorkflowServer, WaitTokens] = weakref.WeakKeyDictionary()

MAX_ERROR_CHARS = 256
MAX_CAUSE_CHARS = 32_768


def waits_of(server: WorkflowServer) -> WaitTokens | None:
    """The wait tokens attached to ``server`` (``None``: a server built without them)."""
    return _by_server.get(server)


@contextlib.asynccontextmanager
async def consuming(server: WorkflowServer, handler_id: str, event: Event) -> AsyncIterator[None]:
    """Wrap the delivery of ``event`` to ``handler_id``: see :meth:`WaitTokens.consuming`."""
    waits = waits_of(server)
    if waits is None:
        yield
        return
    async with waits.consuming(handler_id, event):
        yield


SendEvent = Callable[[str, Event, "str | None"], Awaitable[None]]


def consuming_waits(server: WorkflowServer, send_event: SendEvent) -> SendEvent:
    """``send_event`` with each send wrapped in :func:`consuming` (the local delivery)."""

    async def send(handler_id: str, event: Event, step: str | None = None) -> None:
        async with consuming(server, handler_id, event):
            await send_event(handler_id, event, step)

    return send


async def expire_due(server: WorkflowServer) -> list[str]:
    """The one sweep hook: time out the due waits of ``server``'s deployment."""
    waits = waits_of(server)
    return await waits.expire_due() if waits is not None else []


@dataclass
class RunWaits:
    """What the runtime knows of one run's waits in this process."""

    run_id: str
    workflow: Workflow
    handler_id: str | None = None
    workflow_name: str | None = None
    loaded: bool = False
    waited: bool = False
    """A wait opened in this process (its end must close its tokens)."""


def _waiter_is(waiter_id: str) -> Callable[[TokenRecord], bool]:
    def matches(record: TokenRecord) -> bool:
        return record.kind == "event" and record.waiter_id == waiter_id

    return matches


class WaitTokens:
    """Issue, complete, fail, heartbeat and expire the wait tokens of one deployment."""

    def __init__(
        self,
        store: TokenStore,
        workflow_store: AbstractWorkflowStore,
        *,
        deployment: str,
        defaults: WaitDefaults | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.workflow_store = workflow_store
        self.deployment = deployment
        self.defaults = defaults or WaitDefaults()
        self.clock = clock
        self.server: WorkflowServer | None = None
        self.ticks: TickDelivery | None = None
        self._input_events: dict[int, tuple[str, ...]] = {}
        self._may_wait: dict[int, bool] = {}
        self._endings: dict[tuple[str, str], TokenRecord] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- wiring ----------------------------------------------------------------------------

    def learn(self, workflow: Workflow, *, may_wait: bool = True) -> None:
        """Note which events end the waits ``workflow`` opens with an ``InputRequiredEvent``.

        ``may_wait=False`` (no step returns an ``InputRequiredEvent`` or calls
        ``wait_for_event``, as far as its source says) spares its runs the store reads
        at their end.
        """
        self._may_wait[id(workflow)] = may_wait
        configs = step_configs(workflow)
        accepted = {t for config in configs.values() for t in config.accepted_events}
        responses = sorted(
            t.__name__
            for t in accepted
            if isinstance(t, type)
            and issubclass(t, HumanResponseEvent)
            and not issubclass(t, WaitFailed | WaitTimedOut)
        )
        if not responses:  # no HumanResponseEvent: anything a step takes from outside
            produced = {t for config in configs.values() for t in config.return_types}
            responses = sorted(
                t.__name__
                for t in accepted
                if isinstance(t, type)
                and t not in produced
                and not issubclass(t, StartEvent | WaitFailed | WaitTimedOut)
            )
        self._input_events[id(workflow)] = tuple(responses)

    def attach(self, server: WorkflowServer) -> None:
        """Serve ``server``'s deployment (its delivery hooks find this object)."""
        self.server = server
        self.ticks = self.ticks or LocalTicks(server)
        _by_server[server] = self

    # -- what runs do (called by the runtime decorator) -------------------------------------

    async def observe_tick(self, run: RunWaits, tick: WorkflowTick) -> None:
        """React to a journaled tick of ``run``.

        A wait opens with a step result that adds a waiter or returns an
        ``InputRequiredEvent``; a ``wait_for_event`` wait the run satisfied itself
        (any event source) closes with the step's ``DeleteWaiter``.
        """
        if isinstance(tick, TickStepResult):
            step = str(tick.step_id)
            for result in tick.result:
                if isinstance(result, AddWaiter):
                    await self._open_wait(
                        run,
                        "event",
                        step,
                        result.waiter_id,
                        (result.event_type.__name__,),
                        result.waiter_event,
                    )
                elif isinstance(result, StepWorkerResult) and isinstance(
                    result.result, InputRequiredEvent
                ):
                    source = result.result
                    waiter_id = event_attribute(source, "waiter_id")
                    await self._open_wait(
                        run,
                        "input",
                        step,
                        str(waiter_id or step),
                        self._input_events.get(id(run.workflow), ()),
                        source,
                    )
                elif isinstance(result, DeleteWaiter):
                    await self._close_run_side(run, _waiter_is(result.waiter_id))
        elif isinstance(tick, TickWaiterTimeout):
            await self._waiter_timed_out(run, tick.waiter_id)

    async def observe_event(self, run: RunWaits, event: Event) -> None:
        """React to an event ``run`` published (its end closes its open waits)."""
        if isinstance(event, StopEvent):
            if not run.waited and not self._may_wait.get(id(run.workflow), True):
                return
            await self._close_run_side(run, lambda r: True, "cancelled", "run_ended")
            for key in [k for k in self._endings if k[0] == run.run_id]:
                del self._endings[key]

    async def ending_exception(self, run_id: str, waiter_id: str) -> BaseException | None:
        """What a ``wait_for_event`` whose waiter ``waiter_id`` was timed out raises."""
        record = self._endings.get((run_id, waiter_id))
        if record is None:  # resumed in another process since the wait ended
            handlers = await self.workflow_store.query(HandlerQuery(run_id_in=[run_id]))
            if handlers:
                ended = [
                    r
                    for r in await self.store.for_handler(handlers[0].handler_id)
                    if r.run_id == run_id
                    and r.waiter_id == waiter_id
                    and r.status in ("failed", "timed_out")
                ]
                record = ended[-1] if ended else None
        if record is None:
            return None
        kind: type[WaitError] = WaitFailedError if record.status == "failed" else WaitTimedOutError
        return kind(record.waiter_id, record.error or "Failed", record.cause or "")

    async def _open_tokens(self, run: RunWaits) -> list[TokenRecord] | None:
        """The run's open tokens, read afresh (others may have ended some); ``None``
        when the run has no handler."""
        if not run.loaded:
            handlers = await self.workflow_store.query(HandlerQuery(run_id_in=[run.run_id]))
            run.loaded = True
            if handlers:
                run.handler_id = handlers[0].handler_id
                run.workflow_name = handlers[0].workflow_name
            else:
                logger.warning("run %s has no handler: its waits get no token", run.run_id)
        if run.handler_id is None:
            return None
        return [
            r
            for r in await self.store.for_handler(run.handler_id)
            if r.status == "open" and r.run_id == run.run_id
        ]

    async def _open_wait(
        self,
        run: RunWaits,
        kind: WaitKind,
        step: str,
        waiter_id: str,
        expected: tuple[str, ...],
        source: Event | None,
    ) -> None:
        run.waited = True
        open_tokens = await self._open_tokens(run)
        if open_tokens is None:
            return
        assert run.handler_id is not None
        if any(r.kind == kind and r.waiter_id == waiter_id for r in open_tokens):
            return  # the same wait again (a step retried or re-ran): its token stands
        now = self.now_ms()
        timeout = deadline_seconds(source, "timeout_seconds", self.defaults.timeout_seconds)
        heartbeat = deadline_seconds(source, "heartbeat_seconds", self.defaults.heartbeat_seconds)
        token, _ = new_token(run.handler_id)
        record = TokenRecord(
            token=token,
            handler_id=run.handler_id,
            run_id=run.run_id,
            deployment=self.deployment,
            workflow_name=run.workflow_name or "",
            waiter_id=waiter_id,
            kind=kind,
            step=step,
            expected_events=expected,
            created_ms=now,
            timeout_ms=now + int(timeout * 1000) if timeout is not None else None,
            heartbeat_seconds=heartbeat,
            heartbeat_ms=now + int(heartbeat * 1000) if heartbeat is not None else None,
        )
        await self.store.create(record)
        announcement = WaitTokenIssued(
            token=token,
            handler_id=record.handler_id,
            waiter_id=waiter_id,
            expected_events=list(expected),
            expires_at=iso_ms(record.timeout_ms),
            heartbeat_expires_at=iso_ms(record.heartbeat_ms),
        )
        await self.workflow_store.append_event(
            run.run_id, EventEnvelopeWithMetadata.from_event(announcement)
        )

    async def _close_run_side(
        self,
        run: RunWaits,
        which: Callable[[TokenRecord], bool],
        status: WaitStatus = "completed",
        ended_by: str = "run",
    ) -> None:
        for record in [r for r in await self._open_tokens(run) or () if which(r)]:
            with contextlib.suppress(TokenConflict):  # already ended from outside
                await self.store.close(
                    record, status=status, now_ms=self.now_ms(), ended_by=ended_by, guard="open"
                )

    async def _waiter_timed_out(self, run: RunWaits, waiter_id: str) -> None:
        open_tokens = await self._open_tokens(run)
        if open_tokens is None:
            return
        assert run.handler_id is not None
        for record in [r for r in open_tokens if r.waiter_id == waiter_id]:
            # Still open: the waiter's own timeout (``wait_for_event(timeout=…)``) fired.
            with contextlib.suppress(TokenConflict):
                await self.store.close(
                    record,
                    status="timed_out",
                    now_ms=self.now_ms(),
                    ended_by="timeout",
                    guard="open",
                    error=TIMEOUT,
                    cause="the timeout passed to ctx.wait_for_event passed",
                )
        ended = [
            r
            for r in await self.store.for_handler(run.handler_id)
            if r.run_id == run.run_id
            and r.waiter_id == waiter_id
            and r.status in ("failed", "timed_out")
        ]
        if ended:
            self._endings[(run.run_id, waiter_id)] = ended[-1]

    # -- the token API ---------------------------------------------------------------------

    async def describe(self, token: str) -> TokenRecord:
        """The wait of ``token`` (any status); an open one past its deadline times out now."""
        record = await self._find(token)
        if record.status == "open" and not record.live(self.now_ms()):
            await self._expire_quietly(record)
            record = await self._find(token)
        return record

    async def open_waits(self, handler_id: str) -> list[TokenRecord]:
        """The open waits of a handler (those past a deadline time out now)."""
        now = self.now_ms()
        found = []
        for record in await self.store.for_handler(handler_id):
            if record.status != "open" or record.deployment != self.deployment:
                continue
            if record.live(now):
                found.append(record)
            else:
                await self._expire_quietly(record)
        return found

    async def success(self, token: str, event_data: Any) -> TokenRecord:
        """Complete the wait with ``event_data`` (an event envelope), delivered like
        ``POST /events``."""
        record = await self._live(token)
        event = self._decode(record, event_data)
        assert self.server is not None
        claim = _claiming.set(record)
        try:
            await service_of(self.server).send_event(record.handler_id, event, None)
        except (HandlerNotFoundError, HandlerCompletedError):
            await self._close_ended_run(record)
            raise TaskTimedOut(
                f"The wait {record.waiter_id!r} can no longer be completed: handler "
                f"{record.handler_id} is not running"
            ) from None
        except EventSendError as exc:
            raise DeliveryFailed(f"The event could not be delivered: {exc}") from exc
        finally:
            _claiming.reset(claim)
        return await self.store.get(token) or record

    async def failure(self, token: str, error: str | None, cause: str | None) -> TokenRecord:
        """Fail the wait: the workflow gets ``error`` and ``cause`` (see module doc)."""
        error = error or "Failed"
        cause = cause or ""
        if len(error) > MAX_ERROR_CHARS or len(cause) > MAX_CAUSE_CHARS:
            raise InvalidEvent(
                f"'error' is limited to {MAX_ERROR_CHARS} and 'cause' to "
                f"{MAX_CAUSE_CHARS} characters"
            )
        record = await self._live(token)
        closed = await self._close_live(record, "failed", "failure", error, cause)
        await self._deliver_ending(closed)
        return closed

    async def heartbeat(self, token: str) -> TokenRecord:
        """Push the wait's heartbeat deadline (a no-op for a wait without one)."""
        record = await self._live(token)
        try:
            return await self.store.heartbeat(record, self.now_ms())
        except TokenConflict as conflict:
            raise await self._conflict_error(conflict.current) from None

    @contextlib.asynccontextmanager
    async def consuming(self, handler_id: str, event: Event) -> AsyncIterator[None]:
        """Complete the wait ``event`` ends, then run the block (the delivery).

        In a ``success`` call that is the wait of its token. For a plain ``POST
        /events`` it is the oldest open wait of the handler that expects the event's
        type; if the handler has waits for that type but none is open, the event
        answers a wait that already ended: 409 (completed, failed) or 410 (timed out).
        Events no wait expects pass untouched. If the delivery fails the wait is
        reopened, so an answer is never consumed without reaching the run.
        """
        target = _claiming.get()
        try:
            claimed = await self._claim(handler_id, event, target)
        except WaitTokenError as exc:
            if target is not None:
                raise
            raise HTTPException(exc.status_code, f"{exc} ({exc.code})") from None
        try:
            yield
        except BaseException:
            if claimed is not None:
                await self.store.reopen(claimed)
            raise

    async def _claim(
        self, handler_id: str, event: Event, target: TokenRecord | None
    ) -> TokenRecord | None:
        if target is not None and target.handler_id == handler_id:
            return await self._close_live(target, "completed", "success")
        name = type(event).__name__
        tokens = await self.store.for_handler(handler_id)
        matching = [r for r in tokens if name in r.expected_events]
        if not matching:
            return None
        blocking = matching[-1]
        now = self.now_ms()
        for record in (r for r in matching if r.status == "open"):
            if not record.live(now):
                await self._expire_quietly(record)
                blocking = await self.store.get(record.token) or record
                continue
            try:
                return await self.store.close(
                    record, status="completed", now_ms=now, ended_by="event", guard="live"
                )
            except TokenConflict as conflict:
                blocking = conflict.current or record
        raise await self._conflict_error(blocking)

    async def _find(self, token: str) -> TokenRecord:
        parse_token(token)
        record = await self.store.get(token)
        if record is None or record.deployment != self.deployment:
            raise closed_error(None)
        return record

    async def _live(self, token: str) -> TokenRecord:
        record = await self._find(token)
        if record.status == "open" and record.live(self.now_ms()):
            return record
        raise await self._conflict_error(record)

    async def _close_live(
        self,
        record: TokenRecord,
        status: WaitStatus,
        ended_by: str,
        error: str | None = None,
        cause: str | None = None,
    ) -> TokenRecord:
        try:
            return await self.store.close(
                record,
                status=status,
                now_ms=self.now_ms(),
                ended_by=ended_by,
                guard="live",
                error=error,
                cause=cause,
            )
        except TokenConflict as conflict:
            raise await self._conflict_error(conflict.current) from None

    async def _conflict_error(self, current: TokenRecord | None) -> WaitTokenError:
        """The error for a call that found ``current`` not live (expiring it if due)."""
        if current is not None and current.status == "open":
            await self._expire_quietly(current)
            current = await self.store.get(current.token) or current
            if current.status == "open":  # expiry could not be delivered yet
                return TaskTimedOut(
                    f"The wait {current.waiter_id!r} of handler {current.handler_id} is past "
                    "its deadline"
                )
        return closed_error(current)

    def _decode(self, record: TokenRecord, event_data: Any) -> Event:
        assert self.server is not None
        workflow = served_workflow(self.server, record.workflow_name)
        registry: dict[str, type[Event]] = {}
        if workflow is not None:
            extra = self.server.additional_events.get(record.workflow_name, ())
            registry = {e.__name__: e for e in [*workflow.events, *extra]}
        expected = ", ".join(record.expected_events) or "(none)"
        if not event_data:
            raise InvalidEvent(f"Missing 'event': expected one of {expected}")
        try:
            event = EventEnvelope.parse(event_data, registry)
        except Exception as exc:
            raise InvalidEvent(f"Invalid event ({exc}): expected one of {expected}") from None
        if not isinstance(event, Event) or type(event).__name__ not in record.expected_events:
            raise InvalidEvent(
                f"A {type(event).__name__} does not complete the wait "
                f"{record.waiter_id!r}: expected one of {expected}"
            )
        return event

    # -- endings ---------------------------------------------------------------------------

    async def _deliver_ending(self, closed: TokenRecord) -> None:
        """Tell the run its wait failed or timed out (reopen the token if that fails)."""
        assert self.ticks is not None
        tick: WorkflowTick
        if closed.kind == "event":
            step_id = StepId.from_str(closed.step)
            tick = TickWaiterTimeout(step_id=step_id, waiter_id=closed.waiter_id)
        else:
            ending = WaitFailed if closed.status == "failed" else WaitTimedOut
            tick = TickAddEvent(
                event=ending(
                    waiter_id=closed.waiter_id, error=closed.error or "", cause=closed.cause or ""
                )
            )
        try:
            await self.ticks.deliver(closed.handler_id, tick)
        except (HandlerNotFoundError, HandlerCompletedError):
            return  # the run is over: nobody left to tell
        except Exception as exc:
            await self.store.reopen(closed)
            raise DeliveryFailed(
                f"The end of wait {closed.waiter_id!r} could not be delivered to handler "
                f"{closed.handler_id}: {exc}"
            ) from exc

    async def _expire(self, record: TokenRecord) -> bool:
        """Time ``record`` out if a deadline passed; False if someone else ended it."""
        now = self.now_ms()
        heartbeat_first = record.heartbeat_ms is not None and (
            record.timeout_ms is None or record.heartbeat_ms < record.timeout_ms
        )
        if heartbeat_first:
            error, ended_by = HEARTBEAT_TIMEOUT, "heartbeat_timeout"
            cause = f"no heartbeat within {record.heartbeat_seconds:g} s (heartbeat_seconds)"
        else:
            assert record.timeout_ms is not None
            seconds = (record.timeout_ms - record.created_ms) / 1000
            error, ended_by = TIMEOUT, "timeout"
            cause = f"not completed within {seconds:g} s (timeout_seconds)"
        try:
            closed = await self.store.close(
                record,
                status="timed_out",
                now_ms=now,
                ended_by=ended_by,
                guard="due",
                error=error,
                cause=cause,
            )
        except TokenConflict:
            return False
        await self._deliver_ending(closed)
        return True

    async def _expire_quietly(self, record: TokenRecord) -> None:
        try:
            await self._expire(record)
        except Exception:
            logger.exception("could not time out wait %r", record.waiter_id)

    async def _close_ended_run(self, record: TokenRecord) -> None:
        with contextlib.suppress(TokenConflict):
            await self.store.close(
                record,
                status="cancelled",
                now_ms=self.now_ms(),
                ended_by="run_ended",
                guard="open",
            )

    async def expire_due(self) -> list[str]:
        """Time out every open wait past a deadline; the tokens that timed out."""
        expired = []
        for record in await self.store.due(self.now_ms()):
            try:
                if await self._expire(record):
                    expired.append(record.token)
            except Exception:
                logger.exception("could not time out wait %r", record.waiter_id)
        return expired

    # -- the emulator's sweeper ------------------------------------------------------------

    def start_sweeper(self, interval: float) -> None:
        """Expire due waits every ``interval`` seconds (the emulator; Lambda has ``sweep``)."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(interval))

    async def stop_sweeper(self) -> None:
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _sweep(self, interval: float) -> None:
        rounds = 0
        while True:
            try:
                await self.expire_due()
                if rounds % 3600 == 0:
                    await self.store.cleanup(self.now_ms())
            except Exception:
                logger.exception("wait token sweep failed")
            rounds += 1
            await asyncio.sleep(interval)
