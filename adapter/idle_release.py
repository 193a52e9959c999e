"""Idle release without races: a waiting run leaves memory only while it is still waiting.

``llama-agents-server`` 0.8.0's idle-release decorator writes a run's idle mark
(``idle_since``, with ``status="running"``) outside its reload lock, and later
releases the run when the stored mark is old enough. With store latency (10-20 ms,
DynamoDB) a mark written late lands after an event or a cancel was delivered: the
run is aborted in the middle of the work that event started (it never finishes), or
the mark's ``running`` overwrites the ``cancelled`` the cancel just wrote. A cancel
of a released run is not even delivered (``cancel()`` does not reload the run), yet
answers "cancelled". :class:`IdleReleaseDecorator` is llamaws's replacement:

- **one lock per run** serialises everything that touches its idle state: writing
  the mark, clearing it, delivering an event or a cancel (reloading a released run
  first), and releasing;
- **in memory, the truth**: each ``WorkflowIdleEvent`` opens an idle period, and any
  tick the run processes, any event or cancel delivered, closes it. The mark is
  written, and the run released after ``idle_timeout``, only if that same period is
  still open when the lock is held and every delivered tick has been processed (the
  control loop may declare itself idle while a tick it already pulled from its
  queue waits: aborting it then would lose that tick); the store's mark follows,
  never leads;
- the mark never writes ``status``, and is cleared inline on the control loop (or
  under the lock before a delivery), so it never interleaves with the run's own
  status writes;
- waiting for a run's result never cancels the run: the server's cancel gives up
  waiting after 5 s and cancels its wait, which (the basic runtime hands out the
  control loop's own task) killed a slow run before it processed the cancel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llama_agents.server import AbstractWorkflowStore, HandlerQuery
from typing_extensions import override
from workflows.context.serializers import BaseSerializer
from workflows.context.state_store import StateStore
from workflows.events import Event, StartEvent, StopEvent, WorkflowIdleEvent
from workflows.runtime.runtime_decorators import (
    BaseInternalRunAdapterDecorator,
    BaseRuntimeDecorator,
)
from workflows.runtime.types.internal_state import BrokerState
from workflows.runtime.types.plugin import (
    ExternalRunAdapter,
    InternalRunAdapter,
    V2RuntimeCompatibilityShim,
)
from workflows.runtime.types.ticks import TickAddEvent, TickCancelRun, WorkflowTick
from workflows.workflow import Workflow

from .keyed_lock import KeyedLock
from .upstream import TickPersistenceDecorator

__all__ = ["IdleReleaseDecorator"]

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    """The idle state of one run in memory."""

    period: object | None = None
    """The open idle period (a fresh object per ``WorkflowIdleEvent``), or None: busy."""
    marked: bool = False
    """The store holds this run's ``idle_since`` mark."""
    in_flight: list[WorkflowTick] = field(default_factory=list)
    """Ticks delivered to the run that its control loop has not processed yet."""

    def processed(self, tick: WorkflowTick) -> None:
        """``tick`` reached the control loop: no longer in flight (matched by identity;
        the loop stamps a copy of an event tick, which keeps the event)."""
        for index, sent in enumerate(self.in_flight):
            if tick is sent or (
                isinstance(tick, TickAddEvent)
                and isinstance(sent, TickAddEvent)
                and tick.event is sent.event
            ):
                del self.in_flight[index]
                return


class IdleReleaseDecorator(BaseRuntimeDecorator):
    """Releases runs idle for ``idle_timeout`` seconds; reloads them on delivery.

    Wraps the tick-persistence decorator (reload replays the run's ticks).
    """

    def __init__(
        self,
        decorated: TickPersistenceDecorator,
        store: AbstractWorkflowStore,
        idle_timeout: float = 60.0,
    ) -> None:
        super().__init__(decorated)
        self._persistence = decorated
        self._store = store
        self._idle_timeout = idle_timeout
        self._lock = KeyedLock()
        self._runs: dict[str, _Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active_run_ids(self) -> frozenset[str]:
        """Runs held in memory (not released)."""
        return frozenset(self._runs)

    @override
    def run_workflow(
        self,
        run_id: str,
        workflow: Workflow,
        init_state: BrokerState,
        start_event: StartEvent | None = None,
        serialized_state: dict[str, Any] | None = None,
        serializer: BaseSerializer | None = None,
    ) -> ExternalRunAdapter:
        run = self._runs.setdefault(run_id, _Run())
        adapter = super().run_workflow(
            run_id,
            workflow,
            init_state,
            start_event=start_event,
            serialized_state=serialized_state,
            serializer=serializer,
        )
        self._spawn(self._forget_when_done(run_id, run, adapter))
        return adapter

    @override
    def get_internal_adapter(self, workflow: Workflow) -> InternalRunAdapter:
        return _IdleTrackingAdapter(self._decorated.get_internal_adapter(workflow), self)

    @override
    def get_external_adapter(self, run_id: str) -> ExternalRunAdapter:
        return _ReloadingAdapter(self, run_id)

    @override
    async def destroy(self) -> None:
        await super().destroy()
        for task in list(self._tasks):
            task.cancel()
        for run_id in list(self._runs):
            self._abort(run_id)
        self._runs.clear()

    # -- the control loop's side (called from the run's internal adapter) -----------------

    def _ticking(self, run_id: str, tick: WorkflowTick) -> None:
        """The control loop starts processing ``tick``: the run is busy."""
        run = self._runs.get(run_id)
        if run is not None:
            run.period = None
            run.processed(tick)

    async def _ticked(self, run_id: str) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.marked:
            # Woken without a delivery (a timer): clear the mark, on the loop itself.
            async with self._lock(run_id):
                await self._clear_mark(run_id, run)

    async def _idle(self, run_id: str) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        period = run.period = object()
        async with self._lock(run_id):
            if run.period is not period or self._runs.get(run_id) is not run:
                return  # something arrived while we waited for the lock
            if not run.marked:
                await self._store.update_handler_status(run_id=run_id, idle_since=datetime.now(UTC))
                run.marked = True
        self._spawn(self._release_after_timeout(run_id, run, period))

    # -- the request's side (called from the external adapter) ----------------------------

    async def _deliver(self, run_id: str, tick: WorkflowTick) -> None:
        async with self._lock(run_id):
            run = self._runs.get(run_id) or await self._reload(run_id)
            run.period = None
            await self._clear_mark(run_id, run)
            run.in_flight.append(tick)
            try:
                await self._decorated.get_external_adapter(run_id).send_event(tick)
            except BaseException:
                run.in_flight.remove(tick)
                raise

    async def _reload(self, run_id: str) -> _Run:
        handlers = await self._store.query(HandlerQuery(run_id_in=[run_id]))
        if len(handlers) != 1:
            raise ValueError(f"Expected 1 handler for run {run_id}, got {len(handlers)}")
        handler = handlers[0]
        workflow = self._persistence.get_tracked_workflow(handler.workflow_name)
        if workflow is None:
            raise ValueError(f"Workflow {handler.workflow_name} not found")
        replayed = await self._persistence.context_from_ticks(workflow, run_id)
        run = self._runs[run_id] = _Run(marked=handler.idle_since is not None)
        workflow.run(ctx=replayed.context if replayed is not None else None, run_id=run_id)
        logger.info("Reloaded run %s (handler %s) from its ticks", run_id, handler.handler_id)
        return run

    # -- under the run's lock -------------------------------------------------------------

    async def _clear_mark(self, run_id: str, run: _Run) -> None:
        if run.marked and run.period is None:
            await self._store.update_handler_status(run_id=run_id, idle_since=None)
            run.marked = False

    async def _release_after_timeout(self, run_id: str, run: _Run, period: object) -> None:
        await asyncio.sleep(self._idle_timeout)
        async with self._lock(run_id):
            if self._runs.get(run_id) is not run or run.period is not period:
                return  # busy since, released, or reloaded
            if run.in_flight:
                return  # a delivered tick is still on its way: it will make the run busy
            del self._runs[run_id]
            self._abort(run_id)
        logger.info("Released idle run %s from memory", run_id)

    async def _forget_when_done(self, run_id: str, run: _Run, adapter: ExternalRunAdapter) -> None:
        try:
            await adapter.get_result()
        except BaseException:  # finished in any way (or aborted)
            pass
        finally:
            if self._runs.get(run_id) is run:
                del self._runs[run_id]

    def _abort(self, run_id: str) -> None:
        try:
            inner = self._decorated.get_external_adapter(run_id)
        except Exception:
            return
        if isinstance(inner, V2RuntimeCompatibilityShim):
            inner.abort()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _IdleTrackingAdapter(BaseInternalRunAdapterDecorator):
    """The run's control loop: every tick is activity, a ``WorkflowIdleEvent`` is idleness."""

    def __init__(self, decorated: InternalRunAdapter, owner: IdleReleaseDecorator) -> None:
        super().__init__(decorated)
        self._owner = owner

    @override
    async def on_tick(self, tick: WorkflowTick) -> None:
        self._owner._ticking(self.run_id, tick)
        await super().on_tick(tick)
        await self._owner._ticked(self.run_id)

    @override
    async def write_to_event_stream(self, event: Event) -> None:
        if isinstance(event, WorkflowIdleEvent):
            await self._owner._idle(self.run_id)
        await super().write_to_event_stream(event)


class _ReloadingAdapter(ExternalRunAdapter):
    """A run seen from a request: deliveries go under the run's lock, reloading it if released.

    The inner adapter is looked up on each call: the run may be released and
    reloaded between two calls.
    """

    def __init__(self, owner: IdleReleaseDecorator, run_id: str) -> None:
        self._owner = owner
        self._run_id = run_id

    def _inner(self) -> ExternalRunAdapter:
        return self._owner._decorated.get_external_adapter(self._run_id)

    @property
    def run_id(self) -> str:
        return self._run_id

    async def send_event(self, tick: WorkflowTick) -> None:
        await self._owner._deliver(self._run_id, tick)

    async def cancel(self) -> None:
        await self._owner._deliver(self._run_id, TickCancelRun())

    def stream_published_events(self) -> AsyncGenerator[Event, None]:
        return self._inner().stream_published_events()

    async def close(self) -> None:
        await self._inner().close()

    async def get_result(self) -> StopEvent:
        # The basic runtime hands out the control loop's own task: a waiter that gives
        # up (the server's cancel waits 5 s, then cancels its wait) would cancel the
        # run with it, before it processed the cancel it was sent. Shield the run.
        return await asyncio.shield(self._inner().get_result())

    def get_state_store(self, namespace: tuple[str, ...] = ()) -> StateStore[Any] | None:
        return self._inner().get_state_store(namespace)
