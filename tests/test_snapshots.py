"""Bounded resume: a run resumed from snapshots is the run resumed from its whole journal.

The same conversations run on two Lambda services sharing one table (moto): one
snapshots at every rebuild (``snapshot_every=1``, so every resume starts from a
snapshot), one never does (the whole journal is replayed, as upstream). The results
and the event streams clients read must be the same, and at every turn the context
rebuilt from the latest snapshot must equal the one rebuilt from every tick.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llamaws.adapter.store import DynamoWorkflowStore
from llamaws.adapter.upstream import replay_journal, served_workflow

from .engines import MotoServer
from .lambda_service import LambdaService, moto_settings
from .support import EXAMPLES, wait_until

pytestmark = pytest.mark.timeout(180)

CHAT_APP = """
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent


class Asked(Event):
    turn: int


class Reply(Event):
    turn: int
    n: int


class Noted(Event):
    turn: int
    total: int


class Spin(Event):
    left: int


class Chat(Workflow):
    @step
    async def begin(self, ev: StartEvent) -> Spin:
        return Spin(left=int(ev.get("spins", 6)))

    @step
    async def spin(self, ctx: Context, ev: Spin) -> Spin | Asked:
        await ctx.store.set("spins", await ctx.store.get("spins", default=0) + 1)
        return Spin(left=ev.left - 1) if ev.left > 1 else Asked(turn=0)

    @step
    async def talk(self, ctx: Context, ev: Asked) -> StopEvent:
        total = 0
        for turn in range(3):
            got = await ctx.wait_for_event(
                Reply, waiter_event=Asked(turn=turn), waiter_id=f"turn-{turn}",
                requirements={"turn": turn}, timeout=None,
            )
            total += got.n
            await ctx.store.set(f"turn{turn}", got.n)
            ctx.write_event_to_stream(Noted(turn=turn, total=total))
        spins = await ctx.store.get("spins")
        return StopEvent(result={"total": total, "spins": spins})


chat = Chat(timeout=None)
"""

CHAT_PYPROJECT = """
[project]
name = "chat"
version = "0.1.0"
requires-python = ">=3.11"

[tool.llamadeploy]
name = "chat"

[tool.llamadeploy.workflows]
chat = "chat_app:chat"
"""


@pytest.fixture
def services(
    moto_server: MotoServer, dynamo_table_name: str, tmp_path: Path
) -> Iterator[Callable[[str, int], LambdaService]]:
    started: list[LambdaService] = []
    chat = tmp_path / "chat"
    (chat / "src").mkdir(parents=True)
    (chat / "src" / "chat_app.py").write_text(textwrap.dedent(CHAT_APP))
    (chat / "pyproject.toml").write_text(textwrap.dedent(CHAT_PYPROJECT))
    shutil.copytree(EXAMPLES / "hitl", tmp_path / "hitl")

    def start(app: str, snapshot_every: int) -> LambdaService:
        settings = moto_settings(
            tmp_path / app, moto_server.endpoint, dynamo_table_name, snapshot_every=snapshot_every
        )
        service = LambdaService(settings, 1)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


def request(service: LambdaService, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    status, _, raw = service.request(method, path, **kwargs)
    return status, raw


def converse(
    service: LambdaService, base: str, workflow: str, start: dict[str, Any], answers: list[Any]
) -> tuple[str, list[dict[str, Any]]]:
    """Start ``workflow``, post each answer once the run is parked; the handler id and
    the handler's final state at each turn (parked) are returned."""
    status, raw = request(
        service, "POST", f"{base}/workflows/{workflow}/run-nowait", json_body={"start_event": start}
    )
    assert status == 200, raw
    handler_id = json.loads(raw)["handler_id"]
    wait_until(service.idle, timeout=60, what="the run to park")
    for answer in answers:
        status, raw = request(service, "POST", f"{base}/events/{handler_id}", json_body=answer)
        assert status == 200, raw
        wait_until(service.idle, timeout=60, what="the answer to be taken")
    return handler_id, []


def finished(service: LambdaService, base: str, handler_id: str) -> dict[str, Any]:
    def done() -> bool:
        status, _ = request(service, "GET", f"{base}/handlers/{handler_id}")
        return status != 202

    wait_until(done, timeout=60, what="the run to finish")
    _, raw = request(service, "GET", f"{base}/handlers/{handler_id}")
    return dict(json.loads(raw))


def stream(service: LambdaService, base: str, handler_id: str) -> list[tuple[str, Any]]:
    """What a client reads of the run's stream: (type, value), wait tokens left out
    (each run gets its own)."""
    _, raw = request(
        service,
        "GET",
        f"{base}/events/{handler_id}",
        params={"after_sequence": "-1", "sse": "false"},
    )
    read = []
    for line in raw.decode().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if event["type"].startswith("WaitToken"):
            continue
        read.append((event["type"], event.get("value")))
    return read


def rebuilt_states(service: LambdaService, workflow_name: str, run_id: str) -> tuple[Any, Any]:
    """The context rebuilt from the latest snapshot, and from every tick."""
    container = service.containers[0].container
    store = container.driver.store
    assert isinstance(store, DynamoWorkflowStore)
    workflow = served_workflow(container.app.server, workflow_name)
    assert workflow is not None

    async def both() -> tuple[Any, Any]:
        latest = await store.latest_snapshot(run_id)
        assert latest is not None, "a snapshot was written"
        after, snapshot = latest
        from_snapshot = await replay_journal(
            workflow, run_id, snapshot, store.stream_ticks_after(run_id, after)
        )
        full = await replay_journal(workflow, run_id, None, store.stream_ticks_after(run_id, None))
        assert from_snapshot is not None and full is not None
        return from_snapshot.state, full.state

    return service.containers[0].executor.submit(container.loop.run_until_complete, both()).result()


def snapshot_count(service: LambdaService, run_id: str) -> int:
    store = service.containers[0].container.driver.store
    assert isinstance(store, DynamoWorkflowStore)

    def count() -> int:
        response = store.table.client.query(
            TableName=store.table.table_name,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :c)",
            ExpressionAttributeValues={":pk": {"S": f"R#{run_id}"}, ":c": {"S": "C#"}},
            Select="COUNT",
        )
        return int(response["Count"])

    return count()


CASES = [
    (
        "hitl",
        "ask",
        {},
        [{"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}}],
    ),
    ("hitl", "quiz", {}, [{"event": {"type": "AnswerEvent", "value": {"answer": "42"}}}]),
    (
        "chat",
        "chat",
        {"spins": 6},
        [{"event": {"type": "Reply", "value": {"turn": t, "n": t + 1}}} for t in range(3)],
    ),
]


@pytest.mark.parametrize(("app", "workflow", "start", "answers"), CASES)
def test_a_run_resumed_from_snapshots_finishes_like_one_resumed_from_its_journal(
    services: Callable[[str, int], LambdaService],
    app: str,
    workflow: str,
    start: dict[str, Any],
    answers: list[Any],
) -> None:
    base = f"/deployments/{app}"
    snapshotting = services(app, 1)
    replaying = services(app, 0)
    outcomes = []
    for service in (snapshotting, replaying):
        handler_id, _ = converse(service, base, workflow, start, answers)
        handler = finished(service, base, handler_id)
        snapshots = snapshot_count(service, handler["run_id"])
        assert (snapshots > 0) == (service is snapshotting), snapshots
        outcomes.append((handler["status"], handler["result"], stream(service, base, handler_id)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == "completed" and len(outcomes[0][2]) >= 2


def test_at_every_turn_the_snapshot_rebuilds_the_same_context_as_the_journal(
    services: Callable[[str, int], LambdaService],
) -> None:
    service = services("chat", 1)
    base = "/deployments/chat"
    _, raw = request(
        service,
        "POST",
        f"{base}/workflows/chat/run-nowait",
        json_body={"start_event": {"spins": 6}},
    )
    handler_id = json.loads(raw)["handler_id"]
    wait_until(service.idle, timeout=60, what="the run to park")
    _, raw = request(service, "GET", f"{base}/handlers/{handler_id}")
    run_id = json.loads(raw)["run_id"]
    for turn in range(2):
        from_snapshot, full = rebuilt_states(service, "chat", run_id)
        assert from_snapshot == full, f"turn {turn}"
        request(
            service,
            "POST",
            f"{base}/events/{handler_id}",
            json_body={"event": {"type": "Reply", "value": {"turn": turn, "n": 5}}},
        )
        wait_until(service.idle, timeout=60, what="the answer to be taken")
    from_snapshot, full = rebuilt_states(service, "chat", run_id)
    assert from_snapshot == full
