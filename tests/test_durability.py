"""No run and no answer is lost: the reference server's pitfalls, each pinned down.

In-process tests drive the ASGI app through httpx's ASGI transport (fast, and the
garbage collector can be forced); restart tests drive real emulator processes on
the embedded SQLite store.
"""

from __future__ import annotations

import asyncio
import gc
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from llama_agents.server import MemoryWorkflowStore, SqliteWorkflowStore, WorkflowServer

from llamaws.adapter.app import create_app
from llamaws.adapter.config import resolve_deployment
from llamaws.adapter.delivery import use_awaited_delivery
from llamaws.adapter.loader import LoadedWorkflow, load_workflows

from .support import EXAMPLES, Emulator, wait_until

ANSWER = {"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}}
QUIZ_ANSWER = {"event": {"type": "AnswerEvent", "value": {"answer": "42"}}}


def fresh_hitl_workflows() -> list[LoadedWorkflow]:
    """The hitl example's workflows as new instances (an instance binds to one server)."""
    loaded = load_workflows(resolve_deployment(EXAMPLES / "hitl"))
    return [
        LoadedWorkflow(item.name, type(item.workflow)(timeout=None), item.additional_events)
        for item in loaded
    ]


@asynccontextmanager
async def hitl_app(
    store_path: Path | None = None, idle_timeout: float = 60.0
) -> AsyncIterator[httpx.AsyncClient]:
    """The hitl example's app in this process, started, with a client on its API."""
    deployment = resolve_deployment(EXAMPLES / "hitl")
    store = (
        SqliteWorkflowStore(str(store_path), poll_interval=0.05)
        if store_path
        else MemoryWorkflowStore()
    )
    app = create_app(
        deployment, fresh_hitl_workflows(), store, idle_timeout=idle_timeout, lifespan=False
    )
    await app.start()
    try:
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test/deployments/hitl"
        ) as client:
            yield client
    finally:
        await app.stop()


async def wait_for_status(client: httpx.AsyncClient, handler_id: str, status: str) -> None:
    for _ in range(200):
        if (await client.get(f"/handlers/{handler_id}")).json()["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"handler {handler_id} never became {status}")


async def start(client: httpx.AsyncClient, workflow: str) -> str:
    response = await client.post(f"/workflows/{workflow}/run-nowait", json={"start_event": {}})
    assert response.status_code == 200, response.text
    return str(response.json()["handler_id"])


async def test_answers_posted_after_a_gc_pass_all_complete_their_runs() -> None:
    # The reference server lost 7 of 10 of these (the collector ate the waiting runs).
    async with hitl_app() as client:
        handler_ids = [await start(client, "ask") for _ in range(10)]
        await asyncio.sleep(0.5)
        gc.collect()
        for handler_id in handler_ids:
            posted = await client.post(f"/events/{handler_id}", json=ANSWER)
            assert posted.status_code == 200, posted.text
        for handler_id in handler_ids:
            await wait_for_status(client, handler_id, "completed")


async def test_undeliverable_event_is_an_error_status_not_a_200() -> None:
    # The upstream runtime (no retention) after a GC pass cannot deliver; the
    # client must learn it instead of getting {"status": "sent"}.
    server = WorkflowServer(workflow_store=MemoryWorkflowStore())
    use_awaited_delivery(server)
    for item in fresh_hitl_workflows():
        server.add_workflow(item.name, item.workflow, additional_events=item.additional_events)
    async with server.contextmanager():
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            handler_id = await start(client, "ask")
            await asyncio.sleep(0.5)
            gc.collect()
            posted = await client.post(f"/events/{handler_id}", json=ANSWER)
    assert posted.status_code == 500
    assert posted.json()["detail"].startswith("Failed to send event")


@pytest.mark.parametrize(("workflow", "answer"), [("ask", ANSWER), ("quiz", QUIZ_ANSWER)])
async def test_event_posted_after_idle_release_is_delivered(
    tmp_path: Path, workflow: str, answer: dict[str, object]
) -> None:
    async with hitl_app(tmp_path / "workflows.db", idle_timeout=0.3) as client:
        handler_id = await start(client, workflow)
        await asyncio.sleep(1.0)  # well past the idle timeout: the run is released
        posted = await client.post(f"/events/{handler_id}", json=answer)
        assert posted.status_code == 200, posted.text
        await wait_for_status(client, handler_id, "completed")


def test_wait_for_event_types_are_registered_without_additional_events() -> None:
    deployment = resolve_deployment(EXAMPLES / "hitl")
    quiz = next(item for item in load_workflows(deployment) if item.name == "quiz")
    assert {event.__name__ for event in quiz.additional_events} == {
        "AnswerEvent",
        "QuestionEvent",
    }


def test_waiting_run_is_finished_after_an_emulator_restart(
    example_copy: Callable[[str], Path], emulator_factory: Callable[..., Emulator]
) -> None:
    emulator = emulator_factory(example_copy("hitl"))
    api = f"{emulator.url}/deployments/hitl"
    handler_id = httpx.post(f"{api}/workflows/ask/run-nowait", json={"start_event": {}}).json()[
        "handler_id"
    ]
    wait_until(lambda: httpx.get(f"{api}/handlers/{handler_id}").status_code == 202)
    emulator.restart()
    posted = httpx.post(f"{api}/events/{handler_id}", json=ANSWER)
    assert posted.status_code == 200, posted.text
    done = wait_until(
        lambda: (r := httpx.get(f"{api}/handlers/{handler_id}")).status_code == 200 and r.json(),
        what="the run to complete after the restart",
    )
    assert done["result"]["value"] == {"result": "You said: blue"}


SLOW_APP = """
import asyncio
from workflows import Workflow, step
from workflows.events import StartEvent, StopEvent


class Slow(Workflow):
    @step
    async def wait(self, ev: StartEvent) -> StopEvent:
        await asyncio.sleep(2.0)
        return StopEvent(result="slept")


slow = Slow(timeout=None)
"""


def test_handler_started_just_before_a_restart_is_resumed(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    app_dir = tmp_path / "slow"
    (app_dir / "src").mkdir(parents=True)
    (app_dir / "src" / "slow_app.py").write_text(textwrap.dedent(SLOW_APP))
    (app_dir / "pyproject.toml").write_text(
        '[tool.llamadeploy]\nname = "slow"\nworkflows = { slow = "slow_app:slow" }\n'
    )
    emulator = emulator_factory(app_dir)
    api = f"{emulator.url}/deployments/slow"
    handler_id = httpx.post(f"{api}/workflows/slow/run-nowait", json={"start_event": {}}).json()[
        "handler_id"
    ]
    emulator.restart()  # well within the reference server's 30 s resume grace
    done = wait_until(
        lambda: (r := httpx.get(f"{api}/handlers/{handler_id}")).status_code == 200 and r.json(),
        timeout=15,
        what="the interrupted run to be resumed and complete, with no event sent",
    )
    assert done["result"]["value"] == {"result": "slept"}
