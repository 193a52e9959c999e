"""Awaited delivery of events posted to ``/events/<handler_id>``.

``llama-agents-server`` 0.8.0 delivers a posted event fire-and-forget: the handler's
context schedules ``adapter.send_event`` as a task and answers 200 at once; when
the delivery then fails (a released run that cannot be reloaded, a collected run)
the error is only logged and the event is lost. llamaws awaits the delivery
through the same runtime adapter before answering, so the client gets 200 only
for an event the run's queue (or its durable reload) accepted, and a 500 naming
the failure otherwise.
"""

from __future__ import annotations

from llama_agents.server import WorkflowServer
from llama_agents.server._service import EventSendError, _WorkflowService
from workflows.events import Event
from workflows.runtime.types.step_id import StepId
from workflows.runtime.types.ticks import TickAddEvent

__all__ = ["use_awaited_delivery"]


def use_awaited_delivery(server: WorkflowServer) -> None:
    """Make ``server``'s event posts wait for delivery (see module doc)."""
    service: _WorkflowService = server._service

    async def send_event(handler_id: str, event: Event, step: str | None = None) -> None:
        handler = await service.resolve_handler(handler_id)  # 404 / 409 as upstream
        workflow = service.get_workflow(handler.workflow_name)
        if workflow is None:
            raise EventSendError(f"Workflow {handler.workflow_name} not registered")
        if handler.run_id is None:
            raise EventSendError(f"Handler {handler_id} has no run ID")
        try:
            if step is not None:
                workflow._validate_valid_step_message(step, event)
            adapter = service._runtime.get_external_adapter(handler.run_id)
            await adapter.send_event(
                TickAddEvent(event=event, step_id=StepId.root(step) if step else None)
            )
        except Exception as exc:
            raise EventSendError(f"Failed to send event: {exc}") from exc

    # Rebinding on this instance only: the API and the runtime share the service.
    service.send_event = send_event  # type: ignore[method-assign]
