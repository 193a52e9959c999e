"""Awaited delivery of events posted to ``/events/<handler_id>``.

``llama-agents-server`` 0.8.0 delivers a posted event fire-and-forget: the handler's
context schedules ``adapter.send_event`` as a task and answers 200 at once; when
the delivery then fails (a released run that cannot be reloaded, a collected run)
the error is only logged and the event is lost. llamaws awaits the delivery
through the same runtime adapter before answering, so the client gets 200 only
for an event the run's queue (or its durable reload) accepted, and a 500 naming
the failure otherwise.

Before either path sends, :func:`deliverable_run` checks the event the way the
reference server does (404, 409) and that the run can take it now
(:mod:`adapter.acceptance`): an event that would be dropped or would harm the run
gets a 400 naming what the run takes.
"""

from __future__ import annotations

from llama_agents.client.protocol import HandlerData
from llama_agents.server import WorkflowServer
from workflows.events import Event
from workflows.runtime.types.step_id import StepId
from workflows.runtime.types.ticks import TickAddEvent

from .acceptance import run_acceptance
from .upstream import (
    EventSendError,
    WorkflowService,
    external_adapter,
    override_service,
    service_of,
)
from .waits.service import consuming_waits

__all__ = ["deliverable_run", "use_awaited_delivery"]


async def deliverable_run(
    service: WorkflowService, handler_id: str, event: Event, step: str | None
) -> tuple[HandlerData, str]:
    """The handler and run id an event may go to, checked as upstream does before sending.

    Raises the server's own errors: not found (404), finished (409), or
    ``EventSendError`` (500) for an unserved workflow; ``EventRefused`` (400) for an
    event the run cannot take now (or a ``step`` it has not).
    """
    handler = await service.resolve_handler(handler_id)
    workflow = service.get_workflow(handler.workflow_name)
    if workflow is None:
        raise EventSendError(f"Workflow {handler.workflow_name} not registered")
    if handler.run_id is None:
        raise EventSendError(f"Handler {handler_id} has no run ID")
    acceptance = await run_acceptance(service.store, workflow, handler.run_id)
    acceptance.check(event, step)
    return handler, handler.run_id


def use_awaited_delivery(server: WorkflowServer) -> None:
    """Make ``server``'s event posts wait for delivery (see module doc)."""
    service = service_of(server)

    async def send_event(handler_id: str, event: Event, step: str | None = None) -> None:
        _, run_id = await deliverable_run(service, handler_id, event, step)
        try:
            adapter = external_adapter(server, run_id)
            await adapter.send_event(
                TickAddEvent(event=event, step_id=StepId.root(step) if step else None)
            )
        except Exception as exc:
            raise EventSendError(f"Failed to send event: {exc}") from exc

    override_service(server, send_event=consuming_waits(server, send_event))
