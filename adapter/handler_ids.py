"""Handler ids: a client may choose one, but never reuse one, and only a readable one.

``llama-agents-server`` 0.8.0 starts a run under any ``handler_id`` the client
sends, and when a finished handler has that id it replaces its row (the earlier
result is gone); ids such as ``a/b/../c`` or with a newline are stored but can
never be read back through a URL. llamaws answers 409 for an id that exists (in
any status) and 400 for one outside :data:`HANDLER_ID_PATTERN`.
"""

from __future__ import annotations

import re

from llama_agents.client.protocol import HandlerData
from llama_agents.server import WorkflowServer
from workflows import Context, Workflow
from workflows.events import StartEvent

from .errors import LlamawsError
from .keyed_lock import KeyedLock
from .upstream import HandlerAlreadyRunningError, StartWorkflow, override_service, service_of

__all__ = [
    "HANDLER_ID_PATTERN",
    "MAX_HANDLER_ID_LENGTH",
    "handler_id_problem",
    "use_unique_handler_ids",
]

MAX_HANDLER_ID_LENGTH = 128
HANDLER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
"""What a client-chosen handler id may look like (the server's own are 10-character nanoids)."""


def handler_id_problem(value: object) -> str | None:
    """Why ``value`` cannot be a handler id (None when it can)."""
    if not isinstance(value, str):
        return f"handler_id must be a string, not {type(value).__name__}"
    if not HANDLER_ID_PATTERN.fullmatch(value):
        return (
            f"handler_id must be 1 to {MAX_HANDLER_ID_LENGTH} characters of A-Z, a-z, 0-9, "
            "'_', '.', ':' and '-'"
        )
    return None


def use_unique_handler_ids(server: WorkflowServer) -> None:
    """Make ``server`` refuse (409) a run under an id that already has a handler."""
    service = service_of(server)
    claimed = KeyedLock()

    def wrap(own: StartWorkflow) -> StartWorkflow:
        async def start_workflow(
            workflow: Workflow,
            handler_id: str,
            start_event: StartEvent | None = None,
            context: Context | None = None,
        ) -> HandlerData:
            # One start per id at a time in this process; across processes the store's
            # conditional create (DynamoDB) refuses the second writer.
            async with claimed(handler_id):
                if await service.load_persistent_handler(handler_id) is not None:
                    raise HandlerAlreadyRunningError(
                        f"Handler {handler_id!r} already exists; handler ids are never reused "
                        "(omit handler_id to get a new one)"
                    )
                try:
                    return await own(
                        workflow=workflow,
                        handler_id=handler_id,
                        start_event=start_event,
                        context=context,
                    )
                except LlamawsError as exc:
                    if exc.status_code != 409:
                        raise
                    raise HandlerAlreadyRunningError(
                        f"Handler {handler_id!r} already exists (created concurrently); "
                        "handler ids are never reused"
                    ) from exc

        return start_workflow

    override_service(server, start_workflow=wrap)
