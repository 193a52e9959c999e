"""The one seam to private parts of the workflow server and the workflows library.

llamaws builds on ``llama-agents-server`` 0.8.0 and ``llama-index-workflows``
2.26.1 (pinned). A few things it needs are not public there: the server's
service object (registry, handler lookup, event send, cancel), its runtime
decorators, store helpers, and two private members of ``Workflow``. Every use of
them goes through this module, and ``tests/test_upstream_seam.py`` holds a test
per touch point: an upstream upgrade changes this file and turns a test red,
nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from llama_agents.server._runtime.persistence_runtime import (
    PersistenceDecorator,
    ReplayedContext,
    TickPersistenceDecorator,
    handler_status_from_exit_command,
)
from llama_agents.server._service import (
    EventSendError,
    HandlerAlreadyRunningError,
    HandlerCompletedError,
    HandlerNotFoundError,
    _WorkflowService,
    handler_data_from_persistent,
)
from llama_agents.server._store.abstract_workflow_store import (
    StoredEvent,
    StoredTick,
    decode_persistent_handler,
    is_terminal_status,
    stream_workflow_ticks,
)
from workflows._event_matching import event_matches
from workflows.context.internal_context import InternalContext
from workflows.runtime.types.results import StepWorkerStateContextVar
from workflows.utils import _nanoid

if TYPE_CHECKING:
    from llama_agents.client.protocol import HandlerData
    from llama_agents.server import PersistentHandler, SqliteWorkflowStore, WorkflowServer
    from workflows import Workflow
    from workflows.decorators import StepConfig
    from workflows.events import Event
    from workflows.runtime.types.plugin import ExternalRunAdapter, Runtime

__all__ = [
    "EventSendError",
    "HandlerAlreadyRunningError",
    "HandlerCompletedError",
    "HandlerNotFoundError",
    "PersistenceDecorator",
    "Replay",
    "ReplayedContext",
    "StartWorkflow",
    "StoredEvent",
    "StoredTick",
    "TickPersistenceDecorator",
    "WorkflowService",
    "decode_persistent_handler",
    "event_matches",
    "external_adapter",
    "handler_data_from_persistent",
    "handler_status_from_exit_command",
    "install_wait_end_hook",
    "is_terminal_status",
    "new_id",
    "override_service",
    "replay_journal",
    "served_workflow",
    "served_workflow_names",
    "service_of",
    "sqlite_delete_runs",
    "sqlite_handler_page",
    "step_configs",
    "stream_workflow_ticks",
    "validate_step_message",
    "workflow_steps",
]

WorkflowService = _WorkflowService
"""The server's service: handler lookup (``resolve_handler``,
``load_persistent_handler``), the workflow registry, ``send_event``,
``cancel_handler``."""

SendEvent = Callable[[str, "Event", "str | None"], Awaitable[None]]
CancelHandler = Callable[[str, bool], Awaitable[Literal["cancelled", "deleted"] | None]]
StartWorkflow = Callable[..., Awaitable["HandlerData"]]


def service_of(server: WorkflowServer) -> WorkflowService:
    """The service behind ``server``'s routes (shared by the API and the runtime)."""
    return server._service


def runtime_of(server: WorkflowServer) -> Runtime:
    """The runtime stack ``server`` runs workflows on."""
    return server._service._runtime


def external_adapter(server: WorkflowServer, run_id: str) -> ExternalRunAdapter:
    """The adapter to send events to (or await) the run ``run_id`` in memory."""
    return runtime_of(server).get_external_adapter(run_id)


def served_workflow_names(server: WorkflowServer) -> list[str]:
    """Names of the workflows added to ``server`` (available before it starts)."""
    return list(server._service.get_workflow_names())


def served_workflow(server: WorkflowServer, name: str) -> Workflow | None:
    """The workflow served as ``name``, if any."""
    return server._service.get_workflow(name)


def override_service(
    server: WorkflowServer,
    *,
    send_event: SendEvent | None = None,
    cancel_handler: CancelHandler | None = None,
    start_workflow: Callable[[StartWorkflow], StartWorkflow] | None = None,
) -> CancelHandler:
    """Replace how ``server`` sends events / cancels / starts runs, on this instance only.

    ``start_workflow`` wraps the service's own (it gets it and returns the
    replacement; called as ``start_workflow(workflow=, handler_id=, context=,
    start_event=)``). Returns the server's own cancel (a caller that replaces it
    may still need it).
    """
    service = server._service
    own_cancel: CancelHandler = service.cancel_handler
    if send_event is not None:
        service.send_event = send_event  # type: ignore[method-assign,assignment]
    if cancel_handler is not None:
        service.cancel_handler = cancel_handler  # type: ignore[method-assign,assignment]
    if start_workflow is not None:
        service.start_workflow = start_workflow(service.start_workflow)  # type: ignore[method-assign,assignment]
    return own_cancel


def workflow_steps(workflow: Workflow) -> dict[str, Callable[..., Any]]:
    """The workflow's steps by name (decorated functions)."""
    return dict(workflow._get_steps())


def validate_step_message(workflow: Workflow, step: str, event: Event) -> None:
    """Raise when ``step`` does not exist or does not accept ``event``'s type."""
    workflow._validate_valid_step_message(step, event)


async def sqlite_handler_page(
    store: SqliteWorkflowStore, filters: Any, after: Any, limit: int
) -> list[PersistentHandler]:
    """One page of the listing from the reference SQLite store, keyset-paged.

    ``filters`` / ``after`` are ``adapter.handler_pages.HandlerFilter`` / ``Position``.
    Uses the store's ``handlers`` table, ``_connect`` and ``_row_to_persistent_handler``
    (llama-agents-server 0.8.0): the order is status (running, completed, failed,
    cancelled), then ``workflow_name || '#' || handler_id``, as on DynamoDB.
    """
    import asyncio

    rank = (
        "CASE status WHEN 'running' THEN 0 WHEN 'completed' THEN 1 "
        "WHEN 'failed' THEN 2 WHEN 'cancelled' THEN 3 ELSE 4 END"
    )
    sort = "(workflow_name || '#' || handler_id)"
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in (("status", filters.statuses), ("workflow_name", filters.workflow_names)):
        if values is not None:
            if not values:
                return []
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
            params.extend(values)
    if after is not None:
        from .handler_pages import order_key

        after_rank, after_sort = order_key(after.status, after.workflow_name, after.handler_id)
        clauses.append(f"({rank} > ? OR ({rank} = ? AND {sort} > ?))")
        params.extend([after_rank, after_rank, after_sort])
    sql = (
        "SELECT handler_id, workflow_name, status, run_id, error, result, started_at, "
        "updated_at, completed_at, idle_since FROM handlers"
        + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        + f" ORDER BY {rank}, {sort} LIMIT ?"
    )
    params.append(limit)

    def read() -> list[PersistentHandler]:
        with store._connect() as conn:
            rows = conn.execute(sql, tuple(params)).fetchall()
        return [store._row_to_persistent_handler(row) for row in rows]

    return await asyncio.to_thread(read)


@dataclass
class Replay:
    """A run rebuilt from a snapshot and the ticks after it."""

    replayed: ReplayedContext
    state: dict[str, Any]
    """The rebuilt context, serialized: what a snapshot keeps."""
    last_sequence: int | None
    """The last tick applied (None: none after the snapshot)."""
    ticks: int
    """How many ticks were applied."""


async def replay_journal(
    workflow: Workflow,
    run_id: str,
    snapshot: dict[str, Any] | None,
    ticks: AsyncIterator[StoredTick],
) -> Replay | None:
    """``TickPersistenceDecorator.context_from_ticks`` (0.8.0), starting from ``snapshot``.

    As upstream: the ticks are decoded with the workflow's serializer, folded with
    ``replay_ticks_stream`` (with the run id: it seeds retry jitter) and the state
    is serialized into a fresh ``Context``. The start state is the snapshot's (a
    ``BrokerState`` from the serialized context) instead of an empty one. None when
    there is neither a snapshot nor a tick.
    """
    from workflows import Context
    from workflows.context.context_types import SerializedContext
    from workflows.runtime.control_loop import replay_ticks_stream
    from workflows.runtime.types.internal_state import BrokerState
    from workflows.runtime.types.ticks import WorkflowTickAdapter

    serializer = workflow.runtime.get_serializer(workflow)
    last: list[int] = []

    async def decoded() -> AsyncIterator[Any]:
        async for stored in ticks:
            with serializer.validation_context():
                data = stored.tick_data
                value = (
                    serializer.deserialize(data["serialized_tick"])
                    if "serialized_tick" in data
                    else data
                )
                tick = WorkflowTickAdapter.validate_python(value)
            last.append(stored.sequence)
            yield tick

    stream = decoded()
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        first = None
    if first is None and snapshot is None:
        return None
    if snapshot is not None:
        parsed = SerializedContext.from_dict_auto(snapshot, serializer)
        state = BrokerState.from_serialized(parsed, workflow, serializer)
    else:
        state = BrokerState.from_workflow(workflow)
    exit_command = None
    if first is not None:

        async def with_first() -> AsyncIterator[Any]:
            yield first
            async for tick in stream:
                yield tick

        result = await replay_ticks_stream(state, with_first(), run_id=run_id)
        state, exit_command = result.state, result.exit_command
    serialized = state.to_serialized(serializer).model_dump(mode="json")
    context = Context.from_dict(workflow=workflow, data=serialized, serializer=serializer)
    return Replay(
        ReplayedContext(context=context, exit_command=exit_command),
        serialized,
        last[-1] if last else None,
        len(last),
    )


async def sqlite_delete_runs(store: SqliteWorkflowStore, run_ids: list[str]) -> None:
    """Delete the runs' rows the reference SQLite store's ``delete`` leaves behind.

    Tables of llama-agents-server 0.8.0's schema: ``events``, ``ticks`` and
    ``workflow_state`` (keyed by ``run_id``), through the store's ``_connect``.
    """
    import asyncio

    if not run_ids:
        return
    marks = ",".join("?" * len(run_ids))

    def delete() -> None:
        with store._connect() as conn:
            for table in ("events", "ticks", "workflow_state"):
                conn.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", tuple(run_ids))
            conn.commit()

    await asyncio.to_thread(delete)


def new_id() -> str:
    """A new handler / run id, in the server's own format (a 10-character nanoid)."""
    return str(_nanoid())


def step_configs(workflow: Workflow) -> dict[str, StepConfig]:
    """Each step's config (accepted events, return types), by step name."""
    return {name: func._step_config for name, func in workflow._get_steps().items()}


WaitEndHook = Callable[["Workflow", str, str], Awaitable[BaseException | None]]
"""``(workflow, run_id, waiter_id)`` -> the exception a timed-out waiter raises instead."""

_wait_end_hook: list[WaitEndHook] = []


def install_wait_end_hook(hook: WaitEndHook) -> None:
    """Let ``hook`` choose what ``ctx.wait_for_event`` raises when its waiter was timed out.

    ``workflows`` 2.26.1 ends a waiter from outside with a ``waiter_timeout`` tick: the
    step runs again and ``wait_for_event`` raises ``TimeoutError``. llamaws ends waits
    that way (failure, timeouts of wait tokens) and here swaps that ``TimeoutError``
    for the hook's exception (``None``: keep it). Installed once per process; the
    latest hook wins.
    """
    _wait_end_hook[:] = [hook]
    if getattr(InternalContext.wait_for_event, "_llamaws_hooked", False):
        return
    original = InternalContext.wait_for_event

    async def wait_for_event(
        self: InternalContext[Any],
        event_type: type[Any],
        waiter_event: Event | None = None,
        waiter_id: str | None = None,
        requirements: dict[str, Any] | None = None,
        timeout: float | None = 2000,  # noqa: ASYNC109 - upstream's signature
    ) -> Any:
        try:
            return await original(self, event_type, waiter_event, waiter_id, requirements, timeout)
        except TimeoutError as exc:
            timed_out = [
                w
                for w in StepWorkerStateContextVar.get().state.collected_waiters
                if w.timed_out
                and w.waiting_for_event is event_type
                and (waiter_id is None or w.waiter_id == waiter_id)
            ]
            if not timed_out or not _wait_end_hook:
                raise
            replacement = await _wait_end_hook[0](
                self._workflow, self._internal_adapter.run_id, timed_out[0].waiter_id
            )
            if replacement is None:
                raise
            raise replacement from exc

    wait_for_event._llamaws_hooked = True  # type: ignore[attr-defined]
    InternalContext.wait_for_event = wait_for_event  # type: ignore[method-assign]
