"""One test per touch point of ``llamaws.adapter.upstream``, the seam to private upstream APIs.

When ``llama-agents-server`` or ``llama-index-workflows`` is upgraded, a red test here
names the private thing that moved; ``adapter/upstream.py`` is the one file to mend.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from llama_agents.server import MemoryWorkflowStore, WorkflowServer
from workflows import Context, Workflow, step
from workflows.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)
from workflows.runtime.types.commands import CommandCompleteRun, CommandFailWorkflow
from workflows.runtime.types.step_id import StepId

from llamaws.adapter import upstream
from llamaws.adapter.idle_release import IdleReleaseDecorator
from llamaws.adapter.runtime_stack import durable_runtime


class Ask(InputRequiredEvent):
    prompt: str


class Answer(HumanResponseEvent):
    response: str


class AskWorkflow(Workflow):
    @step
    async def ask(self, ev: StartEvent) -> Ask:
        return Ask(prompt="colour?")

    @step
    async def done(self, ctx: Context, ev: Answer) -> StopEvent:
        return StopEvent(result=ev.response)


STORES: dict[int, MemoryWorkflowStore] = {}


def make_server() -> WorkflowServer:
    store = MemoryWorkflowStore()
    server = WorkflowServer(workflow_store=store, runtime=durable_runtime(store))
    server.add_workflow("ask", AskWorkflow(timeout=None))
    STORES[id(server)] = store
    return server


@pytest.fixture
async def running() -> AsyncIterator[tuple[WorkflowServer, httpx.AsyncClient]]:
    server = make_server()
    await server.start()
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield server, client
    await server.stop()


async def start_waiting_run(client: httpx.AsyncClient, server: WorkflowServer) -> dict[str, str]:
    """Start ``ask`` and wait until its prompt is published (read from the store)."""
    started = (await client.post("/workflows/ask/run-nowait", json={})).json()
    for _ in range(500):
        events = await STORES[id(server)].query_events(started["run_id"])
        if any(stored.event.type == "Ask" for stored in events):
            return dict(started)
        await asyncio.sleep(0.01)
    raise AssertionError("the run never asked")


def test_served_workflow_names_and_workflow_before_start() -> None:
    server = make_server()
    assert upstream.served_workflow_names(server) == ["ask"]
    assert isinstance(upstream.served_workflow(server, "ask"), AskWorkflow)
    assert upstream.served_workflow(server, "nope") is None


def test_service_of_resolves_handlers(running: tuple[WorkflowServer, httpx.AsyncClient]) -> None:
    server, _ = running
    service = upstream.service_of(server)
    assert isinstance(service, upstream.WorkflowService)
    assert callable(service.resolve_handler) and callable(service.load_persistent_handler)


async def test_external_adapter_delivers_to_a_live_run(
    running: tuple[WorkflowServer, httpx.AsyncClient],
) -> None:
    from workflows.runtime.types.ticks import TickAddEvent

    server, client = running
    handler = await start_waiting_run(client, server)
    adapter = upstream.external_adapter(server, handler["run_id"])
    await adapter.send_event(TickAddEvent(event=Answer(response="blue")))
    result = await asyncio.wait_for(adapter.get_result(), 5)
    assert result.result == "blue"


async def test_override_service_replaces_send_event_and_returns_the_own_cancel(
    running: tuple[WorkflowServer, httpx.AsyncClient],
) -> None:
    server, client = running
    handler = await start_waiting_run(client, server)
    seen: list[tuple[str, Event]] = []

    async def send_event(handler_id: str, event: Event, step: str | None = None) -> None:
        seen.append((handler_id, event))

    own_cancel = upstream.override_service(server, send_event=send_event)
    body = {"event": {"type": "Answer", "value": {"response": "red"}}}
    answered = await client.post(f"/events/{handler['handler_id']}", json=body)
    assert answered.status_code == 200
    assert [(h, type(e).__name__) for h, e in seen] == [(handler["handler_id"], "Answer")]
    assert await own_cancel(handler["handler_id"], False) == "cancelled"


@pytest.mark.parametrize(
    ("error", "status"),
    [(upstream.EventSendError("nope"), 500), (upstream.HandlerCompletedError(), 409)],
)
async def test_service_errors_map_to_their_statuses(
    running: tuple[WorkflowServer, httpx.AsyncClient], error: Exception, status: int
) -> None:
    server, client = running
    handler = await start_waiting_run(client, server)

    async def send_event(handler_id: str, event: Event, step: str | None = None) -> None:
        raise error

    upstream.override_service(server, send_event=send_event)
    body = {"event": {"type": "Answer", "value": {"response": "red"}}}
    answered = await client.post(f"/events/{handler['handler_id']}", json=body)
    assert answered.status_code == status


def test_workflow_steps_and_step_message_validation() -> None:
    workflow = AskWorkflow(timeout=None)
    assert {"ask", "done"} <= set(upstream.workflow_steps(workflow))
    upstream.validate_step_message(workflow, "done", Answer(response="x"))
    with pytest.raises(Exception, match=r"done|accept|Answer|Start"):
        upstream.validate_step_message(workflow, "done", StartEvent())


def test_new_id_is_a_ten_character_nanoid() -> None:
    first, second = upstream.new_id(), upstream.new_id()
    assert len(first) == 10 and first != second and first.isalnum()


def test_handler_status_from_exit_command() -> None:
    done = upstream.handler_status_from_exit_command(
        CommandCompleteRun(result=StopEvent(result="ok"))
    )
    assert done is not None and done[0] == "completed"
    failed = upstream.handler_status_from_exit_command(
        CommandFailWorkflow(step_id=StepId.root("ask"), exception=ValueError("boom"))
    )
    assert failed == ("failed", None, "boom")


def test_store_helpers() -> None:
    assert upstream.is_terminal_status("completed") and not upstream.is_terminal_status("running")
    now = datetime.now(UTC)
    tick = upstream.StoredTick(run_id="r", sequence=0, timestamp=now, tick_data={"a": 1})
    assert tick.tick_data == {"a": 1}
    handler = upstream.decode_persistent_handler(
        {"handler_id": "h", "workflow_name": "ask", "status": "running", "run_id": "r"}
    )
    assert (handler.handler_id, handler.run_id, handler.status) == ("h", "r", "running")
    assert upstream.StoredEvent.model_fields.keys() >= {"run_id", "sequence", "event"}


def test_runtime_decorators_stack() -> None:
    store = MemoryWorkflowStore()
    stack = durable_runtime(store)
    assert isinstance(stack, IdleReleaseDecorator)
    assert issubclass(upstream.TickPersistenceDecorator, object)
    assert isinstance(stack._decorated, upstream.PersistenceDecorator)  # type: ignore[attr-defined]


async def test_override_service_wraps_start_workflow_and_already_running_is_409(
    running: tuple[WorkflowServer, httpx.AsyncClient],
) -> None:
    server, client = running
    started: list[str] = []

    def wrap(own: upstream.StartWorkflow) -> upstream.StartWorkflow:
        async def start_workflow(workflow: Workflow, handler_id: str, **kwargs: object) -> object:
            started.append(handler_id)
            if handler_id == "taken":
                raise upstream.HandlerAlreadyRunningError("taken")
            return await own(workflow=workflow, handler_id=handler_id, **kwargs)

        return start_workflow  # type: ignore[return-value]

    upstream.override_service(server, start_workflow=wrap)
    assert (await client.post("/workflows/ask/run-nowait", json={"handler_id": "free"})).is_success
    taken = await client.post("/workflows/ask/run-nowait", json={"handler_id": "taken"})
    assert taken.status_code == 409
    assert started == ["free", "taken"]


async def test_stream_workflow_ticks_yields_the_runs_journal(
    running: tuple[WorkflowServer, httpx.AsyncClient],
) -> None:
    from workflows.runtime.types.ticks import TickAddEvent

    server, client = running
    handler = await start_waiting_run(client, server)
    ticks = [
        tick async for tick in upstream.stream_workflow_ticks(STORES[id(server)], handler["run_id"])
    ]
    assert any(isinstance(t, TickAddEvent) and isinstance(t.event, StartEvent) for t in ticks)


def test_event_matches_is_the_routing_rule() -> None:
    assert upstream.event_matches(Answer(response="x"), Answer, allow_subclasses=False)
    assert not upstream.event_matches(
        Answer(response="x"), HumanResponseEvent, allow_subclasses=False
    )
    assert upstream.event_matches(Answer(response="x"), HumanResponseEvent, allow_subclasses=True)


def test_step_configs_tell_accepted_and_returned_events() -> None:
    configs = upstream.step_configs(AskWorkflow(timeout=None))
    assert Ask in configs["ask"].return_types
    assert configs["done"].accepted_events == [Answer]


class Verdict(Event):
    verdict: str


class Asked(Event):
    pass


class Waits(Workflow):
    @step
    async def wait(self, ctx: Context, ev: StartEvent) -> StopEvent:
        try:
            got = await ctx.wait_for_event(
                Verdict, waiter_event=Asked(), waiter_id="w", timeout=None
            )
        except TimeoutError as exc:
            return StopEvent(result=f"{type(exc).__name__}: {exc}")
        return StopEvent(result=got.verdict)


class Swapped(TimeoutError):
    pass


async def test_wait_end_hook_swaps_the_timeout_of_a_waiter_ended_from_outside() -> None:
    from workflows.runtime.types.ticks import TickWaiterTimeout

    seen: list[tuple[str, str]] = []

    async def hook(workflow: Workflow, run_id: str, waiter_id: str) -> BaseException | None:
        seen.append((type(workflow).__name__, waiter_id))
        return Swapped("ended from outside")

    saved = list(upstream._wait_end_hook)  # the process-wide hook: put it back after
    upstream.install_wait_end_hook(hook)
    try:
        workflow = Waits(timeout=None)
        handler = workflow.run()
        async for event in handler.stream_events():
            if isinstance(event, Asked):  # the waiter is registered
                break
        assert handler.run_id is not None
        await workflow.runtime.get_external_adapter(handler.run_id).send_event(
            TickWaiterTimeout(step_id=StepId.root("wait"), waiter_id="w")
        )
        assert await asyncio.wait_for(handler, 5) == "Swapped: ended from outside"
        assert seen == [("Waits", "w")]
    finally:
        upstream._wait_end_hook[:] = saved


def test_handler_not_found_error_is_the_servers() -> None:
    from llama_agents.server._service import HandlerNotFoundError

    assert upstream.HandlerNotFoundError is HandlerNotFoundError


def test_handler_data_from_persistent_is_the_listing_wire_format() -> None:
    from llama_agents.server import PersistentHandler

    started = datetime(2026, 1, 2, tzinfo=UTC)
    data = upstream.handler_data_from_persistent(
        PersistentHandler(
            handler_id="h1",
            workflow_name="ask",
            status="completed",
            started_at=started,
            result=StopEvent(result="blue"),
        )
    ).model_dump(mode="json")
    assert data["handler_id"] == "h1" and data["started_at"] == started.isoformat()
    assert data["result"]["value"]["result"] == "blue"


async def test_sqlite_handler_page_reads_the_handlers_table_in_listing_order(
    tmp_path: Path,
) -> None:
    from llama_agents.server import PersistentHandler, SqliteWorkflowStore

    from llamaws.adapter.handler_pages import HandlerFilter, Position

    store = SqliteWorkflowStore(str(tmp_path / "workflows.db"))
    for handler_id, workflow, status in [
        ("b", "w", "completed"),
        ("a", "w", "running"),
        ("c", "v", "running"),
    ]:
        await store.update(
            PersistentHandler(handler_id=handler_id, workflow_name=workflow, status=status)  # type: ignore[arg-type]
        )
    everything = HandlerFilter.of(None, None)
    first = await upstream.sqlite_handler_page(store, everything, None, 2)
    assert [h.handler_id for h in first] == ["c", "a"]
    rest = await upstream.sqlite_handler_page(store, everything, Position.of(first[-1]), 10)
    assert [h.handler_id for h in rest] == ["b"]


async def test_replay_journal_rebuilds_what_context_from_ticks_rebuilds(
    running: tuple[WorkflowServer, httpx.AsyncClient],
) -> None:
    from llama_agents.server import MemoryWorkflowStore

    server, client = running
    handler = await start_waiting_run(client, server)
    store = STORES[id(server)]
    workflow = upstream.served_workflow(server, "ask")
    assert workflow is not None
    theirs = await upstream.TickPersistenceDecorator(
        upstream.runtime_of(server), store
    ).context_from_ticks(workflow, handler["run_id"])
    ours = await upstream.replay_journal(
        workflow, handler["run_id"], None, store.stream_ticks(handler["run_id"])
    )
    assert theirs is not None and ours is not None and ours.ticks > 0
    assert ours.replayed.context.to_dict() == theirs.context.to_dict()
    again = await upstream.replay_journal(workflow, handler["run_id"], ours.state, _no_ticks())
    assert again is not None and again.ticks == 0 and again.state == ours.state
    assert await upstream.replay_journal(workflow, "nothing", None, _no_ticks()) is None
    assert isinstance(store, MemoryWorkflowStore)


async def _no_ticks() -> AsyncIterator[upstream.StoredTick]:
    return
    yield


async def test_sqlite_delete_runs_removes_events_ticks_and_state(tmp_path: Path) -> None:
    from llama_agents.server import SqliteWorkflowStore

    store = SqliteWorkflowStore(str(tmp_path / "workflows.db"))
    for run_id in ("gone", "kept"):
        await store.append_tick(run_id, {"n": 1})
        await store.create_state_store(run_id).set("k", "v")
    await upstream.sqlite_delete_runs(store, ["gone"])
    assert await store.get_ticks("gone") == [] and len(await store.get_ticks("kept")) == 1
    fresh = SqliteWorkflowStore(str(tmp_path / "workflows.db"))
    assert await fresh.create_state_store("gone").get("k", default=None) is None
    assert await fresh.create_state_store("kept").get("k") == "v"
