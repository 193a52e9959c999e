"""How the end of a wait (failure, timeout) reaches its run: a tick, delivered durably.

- :class:`LocalTicks` (the emulator): through the runtime's external adapter, like
  the awaited delivery of ``POST /events``: a run released from memory is reloaded
  from its journal first; the tick is journaled before the call returns.
- :class:`InboxTicks` (Lambda): an inbox entry of kind ``tick`` plus a ``continue``
  invocation, like ``POST /events`` there; the run's driver delivers it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from workflows.context import JsonSerializer
from workflows.runtime.types.ticks import WorkflowTick

from ..upstream import EventSendError, external_adapter, service_of

if TYPE_CHECKING:
    from llama_agents.server import WorkflowServer

    from ..lambda_runtime.coordination import Coordination
    from ..lambda_runtime.invoker import Invoker

__all__ = ["InboxTicks", "LocalTicks", "TickDelivery", "tick_from_json", "tick_to_json"]


class TickDelivery(Protocol):
    """Delivers a tick to a handler's run (raises the server's not-found / finished errors)."""

    async def deliver(self, handler_id: str, tick: WorkflowTick) -> None: ...


def tick_to_json(tick: WorkflowTick) -> str:
    """A tick as the journal stores it."""
    return str(JsonSerializer().serialize(tick))


def tick_from_json(data: str) -> WorkflowTick:
    tick: WorkflowTick = JsonSerializer().deserialize(data)
    return tick


class LocalTicks:
    """Ticks to runs of this process's workflow server (reloaded when released)."""

    def __init__(self, server: WorkflowServer) -> None:
        self.server = server

    async def deliver(self, handler_id: str, tick: WorkflowTick) -> None:
        handler = await service_of(self.server).resolve_handler(handler_id)
        if handler.run_id is None:
            raise EventSendError(f"Handler {handler_id} has no run ID")
        await external_adapter(self.server, handler.run_id).send_event(tick)


class InboxTicks:
    """Ticks through the run's inbox and a ``continue`` invocation (Lambda)."""

    def __init__(
        self, server: WorkflowServer, coordination: Coordination, invoker: Invoker
    ) -> None:
        self.server = server
        self.coordination = coordination
        self.invoker = invoker

    async def deliver(self, handler_id: str, tick: WorkflowTick) -> None:
        from ..lambda_runtime.coordination import InboxEntry
        from ..lambda_runtime.events import ContinueRun

        await service_of(self.server).resolve_handler(handler_id)  # 404 / finished
        await self.coordination.post(handler_id, InboxEntry("tick", event=tick_to_json(tick)))
        await self.invoker.invoke_async(ContinueRun(handler_id).payload())
