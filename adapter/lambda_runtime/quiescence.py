"""Know when a run has nothing left to do, in the order its control loop sees things.

A runtime decorator placed outside tick persistence: its ``on_tick`` returns after
the tick is journaled, so it counts journaled ticks and journaled external events;
a ``WorkflowIdleEvent`` (published after any tick that left the run with no work)
marks the run idle, and every journaled external event clears that mark. The
driver waits for "all my events journaled and idle since", or the end of the run.

It also records ``idle_since`` on the handler like the server's idle-release
decorator does (which the Lambda stack does not use), so listings and the sweeper
can tell waiting runs from working ones.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from llama_agents.server import AbstractWorkflowStore
from typing_extensions import override
from workflows.events import Event, WorkflowIdleEvent
from workflows.runtime.runtime_decorators import (
    BaseInternalRunAdapterDecorator,
    BaseRuntimeDecorator,
)
from workflows.runtime.types.plugin import InternalRunAdapter, Runtime
from workflows.runtime.types.ticks import TickAddEvent, TickWaiterTimeout, WorkflowTick
from workflows.workflow import Workflow

__all__ = ["QuiescenceDecorator", "RunSignals"]


@dataclass
class RunSignals:
    """What the control loop of one run has done so far in this container."""

    ticks: int = 0
    """Ticks journaled."""
    added: int = 0
    """External events (``TickAddEvent``) and wait endings (``TickWaiterTimeout``) journaled."""
    idle: bool = False
    """No work left since the last journaled external event."""
    awaiting: Counter[object] = field(default_factory=Counter)
    """Ticks sent from outside (:meth:`expect`) and not journaled yet."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.changed.set()

    def expect(self, tick: WorkflowTick) -> None:
        """Note a tick about to be sent to the run: it is awaited until journaled."""
        self.awaiting[_identity(tick)] += 1

    def journaled(self, tick: WorkflowTick) -> None:
        key = _identity(tick)
        if self.awaiting[key] > 0:
            self.awaiting[key] -= 1
        if self.awaiting[key] <= 0:
            del self.awaiting[key]


def _identity(tick: WorkflowTick) -> object:
    """What survives the control loop's copy of a tick (its event object, or its waiter)."""
    if isinstance(tick, TickWaiterTimeout):
        return ("waiter_timeout", str(tick.step_id), tick.waiter_id)
    if isinstance(tick, TickAddEvent):
        return ("add_event", id(tick.event))
    return (tick.type, id(tick))


class QuiescenceDecorator(BaseRuntimeDecorator):
    """Tracks :class:`RunSignals` per run id."""

    def __init__(self, decorated: Runtime, store: AbstractWorkflowStore) -> None:
        super().__init__(decorated)
        self._store = store
        self._signals: dict[str, RunSignals] = {}

    def signals(self, run_id: str) -> RunSignals:
        return self._signals.setdefault(run_id, RunSignals())

    def forget(self, run_id: str) -> None:
        self._signals.pop(run_id, None)

    @override
    def get_internal_adapter(self, workflow: Workflow) -> InternalRunAdapter:
        return _SignallingAdapter(self._decorated.get_internal_adapter(workflow), self)

    async def _mark_idle(self, run_id: str, idle: bool) -> None:
        await self._store.update_handler_status(
            run_id=run_id, idle_since=datetime.now(UTC) if idle else None
        )


class _SignallingAdapter(BaseInternalRunAdapterDecorator):
    def __init__(self, decorated: InternalRunAdapter, owner: QuiescenceDecorator) -> None:
        super().__init__(decorated)
        self._owner = owner

    @override
    async def on_tick(self, tick: WorkflowTick) -> None:
        await super().on_tick(tick)  # journaled once this returns
        signals = self._owner.signals(self.run_id)
        signals.ticks += 1
        if isinstance(tick, TickAddEvent | TickWaiterTimeout):  # from outside the run
            signals.journaled(tick)
            was_idle = signals.idle
            signals.added += 1
            signals.idle = False
            if was_idle:
                await self._owner._mark_idle(self.run_id, False)
        signals.notify()

    @override
    async def write_to_event_stream(self, event: Event) -> None:
        if isinstance(event, WorkflowIdleEvent):
            await self._owner._mark_idle(self.run_id, True)
        await super().write_to_event_stream(event)
        signals = self._owner.signals(self.run_id)
        if isinstance(event, WorkflowIdleEvent):
            signals.idle = True
        signals.notify()
