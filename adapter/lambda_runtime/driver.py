"""Drive runs across Lambda invocations: one driver per run, nothing runs while frozen.

- :meth:`RunDriver.drive` (a ``continue`` invocation): take the run's lease, resume
  it from its ticks, deliver its inbox, and run it until it is finished or idle
  (waiting for input), or until the invocation's budget is nearly spent; then stop
  it in memory, release the lease and, if work remains, invoke ``continue`` again.
- :meth:`RunDriver.hand_off` (end of every invocation): whatever is still in memory
  (a run started by ``run-nowait``, a ``run`` whose budget ran out) is stopped
  after its first tick is journaled and handed to a ``continue`` invocation.
- :meth:`RunDriver.sweep` (a schedule): runs due for a look (their due mark, see
  :mod:`.coordination`) that nobody drives and that have work get a ``continue``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from llama_agents.server import (
    AbstractWorkflowStore,
    HandlerQuery,
    PersistentHandler,
    WorkflowServer,
)
from workflows.runtime.types.plugin import ExternalRunAdapter
from workflows.runtime.types.step_id import StepId
from workflows.runtime.types.ticks import TickAddEvent, WorkflowTick

from ..runtime_stack import RetainRunsDecorator
from ..snapshots import SnapshotTickPersistence
from ..upstream import (
    TickPersistenceDecorator,
    external_adapter,
    handler_status_from_exit_command,
    served_workflow,
)
from ..waits.delivery import tick_from_json
from ..waits.service import expire_due
from .coordination import Coordination, InboxEntry
from .events import ContinueRun, InternalEvent, Sweep
from .invoker import Invoker
from .quiescence import QuiescenceDecorator, RunSignals

__all__ = ["DriveOutcome", "RunDriver"]

logger = logging.getLogger(__name__)

DriveOutcome = Literal["busy", "finished", "idle", "continued", "lost"]
CancelHandler = Callable[[str, bool], Awaitable[Literal["cancelled", "deleted"] | None]]
TERMINAL = frozenset(("completed", "failed", "cancelled"))


@dataclass
class RunDriver:
    """Drives the runs of one container's workflow server (see module doc)."""

    server: WorkflowServer
    store: AbstractWorkflowStore
    coordination: Coordination
    invoker: Invoker
    retain: RetainRunsDecorator
    persistence: TickPersistenceDecorator | SnapshotTickPersistence
    quiescence: QuiescenceDecorator
    cancel: CancelHandler
    """The server's own cancel, for runs this driver holds in memory."""
    inbox_poll_seconds: float = 0.5

    async def handle(self, event: InternalEvent, deadline: float) -> dict[str, Any]:
        """Run an internal event; the result is the invocation's JSON answer."""
        if isinstance(event, ContinueRun):
            outcome = await self.drive(event.handler_id, deadline)
            return {"handler_id": event.handler_id, "outcome": outcome}
        assert isinstance(event, Sweep)
        return {
            "continued": await self.sweep(full=event.full),
            "waits_expired": await expire_due(self.server),
        }

    # -- one run -----------------------------------------------------------------------

    async def drive(self, handler_id: str, deadline: float) -> DriveOutcome:
        """Drive ``handler_id``'s run under its lease until it is quiet or time is up."""
        if not await self.coordination.acquire(handler_id):
            return "busy"
        lost = asyncio.Event()
        renewer = asyncio.create_task(self._keep_lease(handler_id, lost))
        outcome: DriveOutcome = "idle"
        run_id: str | None = None
        try:
            handler = await self._handler(handler_id)
            if handler is None or handler.status in TERMINAL or handler.run_id is None:
                await self.coordination.done(
                    handler_id, await self.coordination.pending(handler_id)
                )
                return "finished"
            run_id = handler.run_id
            adapter = await self.load(handler)
            if adapter is None:
                return "finished"
            outcome = await self._run_until_quiet(handler, adapter, deadline, lost)
        finally:
            renewer.cancel()
            if run_id is not None:
                self.stop(run_id)
            if outcome in ("idle", "finished"):
                # Before the release: a poster's mark written after this stays, and an
                # entry posted before it is seen by the look at the inbox below.
                await self.coordination.clear_due(handler_id)
            if outcome != "lost":
                await self.coordination.release(handler_id)
        # Released first, then looked: an entry posted meanwhile is never stranded.
        if outcome == "continued" or (
            outcome == "idle" and await self.coordination.pending(handler_id)
        ):
            await self.invoker.invoke_async(ContinueRun(handler_id).payload())
        return outcome

    async def _run_until_quiet(
        self,
        handler: PersistentHandler,
        adapter: ExternalRunAdapter,
        deadline: float,
        lost: asyncio.Event,
    ) -> DriveOutcome:
        assert handler.run_id is not None
        signals = self.quiescence.signals(handler.run_id)
        expected_added = signals.added
        finished = asyncio.ensure_future(adapter.get_result())
        try:
            return await self._deliver_until_quiet(
                handler, adapter, signals, finished, expected_added, deadline, lost
            )
        finally:
            finished.cancel()

    async def _deliver_until_quiet(
        self,
        handler: PersistentHandler,
        adapter: ExternalRunAdapter,
        signals: RunSignals,
        finished: asyncio.Future[Any],
        expected_added: int,
        deadline: float,
        lost: asyncio.Event,
    ) -> DriveOutcome:
        delivered: list[InboxEntry] = []
        while True:
            seen = {entry.entry_id for entry in delivered}
            fresh = [
                e
                for e in await self.coordination.pending(handler.handler_id)
                if e.entry_id not in seen
            ]
            for entry in fresh:
                if entry.kind in ("event", "tick"):
                    expected_added += 1
                await self._deliver(handler, adapter, entry)
                delivered.append(entry)
            state = await self._wait(signals, finished, expected_added, deadline, lost)
            logger.debug(
                "handler %s: %s (delivered %d, journaled %d/%d events, idle %s)",
                handler.handler_id,
                state,
                len(delivered),
                signals.added,
                expected_added,
                signals.idle,
            )
            if state == "lost":
                return "lost"
            if state == "timeout":
                return "continued"
            if state == "poll":
                continue
            await self.coordination.done(handler.handler_id, delivered)
            delivered = []
            if state == "done":
                return "finished"
            if not await self.coordination.pending(handler.handler_id):
                await self._checkpoint(handler)
                return "idle"

    async def _checkpoint(self, handler: PersistentHandler) -> None:
        """The run is idle (no step half done): snapshot it if ticks piled up."""
        workflow = served_workflow(self.server, handler.workflow_name)
        if isinstance(self.persistence, SnapshotTickPersistence) and workflow is not None:
            assert handler.run_id is not None
            await self.persistence.checkpoint(workflow, handler.run_id)

    async def _wait(
        self,
        signals: RunSignals,
        finished: asyncio.Future[Any],
        expected_added: int,
        deadline: float,
        lost: asyncio.Event,
    ) -> Literal["quiet", "done", "poll", "timeout", "lost"]:
        poll_at = time.monotonic() + self.inbox_poll_seconds
        while True:
            if lost.is_set():
                return "lost"
            if finished.done():
                return "done"
            if signals.added >= expected_added and not signals.awaiting and signals.idle:
                return "quiet"
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            if now >= poll_at:
                return "poll"
            signals.changed.clear()
            changed = asyncio.ensure_future(signals.changed.wait())
            await asyncio.wait(
                {changed, finished},
                timeout=min(deadline, poll_at) - now,
                return_when=asyncio.FIRST_COMPLETED,
            )
            changed.cancel()

    async def _deliver(
        self, handler: PersistentHandler, adapter: ExternalRunAdapter, entry: InboxEntry
    ) -> None:
        if entry.kind == "cancel":
            await self.cancel(handler.handler_id, entry.purge)
            return
        tick: WorkflowTick
        if entry.kind == "tick":
            tick = tick_from_json(entry.event)
        else:
            decoder = self.server.get_json_decoder(handler.workflow_name)
            event = decoder.deserialize_value(entry.event)
            step_id = StepId.root(entry.step) if entry.step else None
            tick = TickAddEvent(event=event, step_id=step_id)
        assert handler.run_id is not None
        # Quiet only once this very tick is journaled: a count of added events alone
        # is met early by events the resumed run journals itself.
        self.quiescence.signals(handler.run_id).expect(tick)
        await adapter.send_event(tick)

    async def load(self, handler: PersistentHandler) -> ExternalRunAdapter | None:
        """The run in memory: resumed from its ticks (None when it turned out finished)."""
        run_id = handler.run_id
        assert run_id is not None
        if run_id in self.retain.live_run_ids:
            return external_adapter(self.server, run_id)
        workflow = served_workflow(self.server, handler.workflow_name)
        if workflow is None:
            await self.store.update_handler_status(
                run_id, status="failed", error=f"workflow {handler.workflow_name!r} is not served"
            )
            return None
        replayed = await self.persistence.context_from_ticks(workflow, run_id)
        if replayed is None:
            await self.store.update_handler_status(
                run_id,
                status="failed",
                error="handler crashed before persisting any state; cannot resume",
            )
            return None
        if replayed.exit_command is not None:
            final = handler_status_from_exit_command(replayed.exit_command)
            if final is not None:
                status, result, error = final
                await self.store.update_handler_status(
                    run_id, status=status, result=result, error=error
                )
                return None
        if not replayed.context.is_running:
            # Without its start event in the journal, a resumed run would start over
            # from an empty StartEvent: fail it visibly instead.
            await self.store.update_handler_status(
                run_id,
                status="failed",
                error="handler crashed before its start event was persisted; cannot resume",
            )
            return None
        self.quiescence.forget(run_id)
        workflow.run(ctx=replayed.context, run_id=run_id)
        # A run resumed while waiting publishes no new WorkflowIdleEvent: its
        # persisted idle mark (cleared whenever an event is added) says it is idle.
        self.quiescence.signals(run_id).idle = handler.idle_since is not None
        return external_adapter(self.server, run_id)

    def stop(self, run_id: str) -> None:
        """Stop a run in memory (its journal stays; :meth:`load` resumes it)."""
        self.retain.release(run_id)
        self.quiescence.forget(run_id)

    async def _keep_lease(self, handler_id: str, lost: asyncio.Event) -> None:
        interval = self.coordination.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            if not await self.coordination.renew(handler_id):
                logger.warning("lost the lease of handler %s: stopping its run", handler_id)
                lost.set()
                return

    async def _handler(self, handler_id: str) -> PersistentHandler | None:
        found = await self.store.query(HandlerQuery(handler_id_in=[handler_id]))
        return found[0] if found else None

    # -- end of an invocation -------------------------------------------------------------

    async def hand_off(self, deadline: float) -> list[str]:
        """Stop every run still in memory; hand unfinished ones to ``continue``."""
        handed: list[str] = []
        for run_id in sorted(self.retain.live_run_ids):
            signals = self.quiescence.signals(run_id)
            # A run is resumable once its start event is journaled (the first tick
            # is only the session start): let a run just started get that far.
            limit = min(deadline, time.monotonic() + 2.0)
            while signals.added == 0 and time.monotonic() < limit:
                signals.changed.clear()
                try:
                    await asyncio.wait_for(signals.changed.wait(), limit - time.monotonic())
                except TimeoutError:
                    break
            self.stop(run_id)
            found = await self.store.query(HandlerQuery(run_id_in=[run_id]))
            if not found or found[0].status in TERMINAL:
                continue
            handler_id = found[0].handler_id
            await self.coordination.release(handler_id)
            await self.invoker.invoke_async(ContinueRun(handler_id).payload())
            handed.append(handler_id)
        await asyncio.sleep(0)  # let the stopped control loops finish cancelling
        return handed

    # -- schedule -------------------------------------------------------------------------

    async def sweep(self, stale_after: timedelta | None = None, *, full: bool = False) -> list[str]:
        """``continue`` runs that have work (or inbox entries) and no live driver.

        Reads only the runs whose due mark is due now (see :mod:`.coordination`);
        ``full`` looks at every running handler instead (a listing of them all), for
        runs from before due marks existed or a mark lost with its container.
        """
        if full:
            return await self._sweep_all(stale_after)
        continued: list[str] = []
        for handler_id in await self.coordination.due():
            handler = await self._handler(handler_id)
            if handler is None or handler.status in TERMINAL:
                await self.coordination.clear_due(handler_id)
                continue
            lease = await self.coordination.lease_of(handler_id)
            if lease is not None and lease.live():
                continue  # driven now: the driver clears the mark when the run is quiet
            waiting = handler.idle_since is not None
            if waiting and not await self.coordination.pending(handler_id):
                await self.coordination.clear_due(handler_id)
                continue
            await self.invoker.invoke_async(ContinueRun(handler_id).payload())
            continued.append(handler_id)
        return continued

    async def _sweep_all(self, stale_after: timedelta | None) -> list[str]:
        stale_after = stale_after or timedelta(milliseconds=self.coordination.lease_ms)
        cutoff = datetime.now(UTC) - stale_after
        continued: list[str] = []
        for handler in await self.store.query(HandlerQuery(status_in=["running"])):
            if handler.updated_at is not None and handler.updated_at > cutoff:
                continue
            lease = await self.coordination.lease_of(handler.handler_id)
            if lease is not None and lease.live():
                continue
            waiting = handler.idle_since is not None
            if waiting and not await self.coordination.pending(handler.handler_id):
                continue
            await self.invoker.invoke_async(ContinueRun(handler.handler_id).payload())
            continued.append(handler.handler_id)
        return continued
