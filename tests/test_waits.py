"""Wait tokens through the app's HTTP API, on the embedded SQLite store and on DynamoDB.

The app runs in this process (httpx's ASGI transport) on a real store: a SQLite file,
or a table on the moto server. Deadlines are short (the emulator's sweeper runs
every 0.1 s here) and every wait is polled, never slept on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.server import AbstractWorkflowStore, SqliteWorkflowStore

from llamaws.adapter.app import DeploymentApp, create_app
from llamaws.adapter.config import resolve_deployment
from llamaws.adapter.errors import ConfigError
from llamaws.adapter.loader import LoadedWorkflow, load_workflows
from llamaws.adapter.runtime_stack import durable_runtime
from llamaws.adapter.waits.config import wait_defaults
from llamaws.adapter.waits.tokens import parse_token

from .waits_support import (
    ANSWER,
    ANSWER_OF,
    VERDICT,
    result_of,
    seconds_until,
    write_gate_app,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def gate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gate_app(tmp_path_factory.mktemp("waits"))


def fresh_workflows(app_dir: Path) -> list[LoadedWorkflow]:
    """New workflow instances (an instance serves one server)."""
    return [
        LoadedWorkflow(item.name, type(item.workflow)(timeout=None), item.additional_events)
        for item in load_workflows(resolve_deployment(app_dir))
    ]


def open_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AbstractWorkflowStore:
    if kind == "sqlite":
        return SqliteWorkflowStore(str(tmp_path / "workflows.db"), poll_interval=0.05)
    from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore

    moto = request.getfixturevalue("moto_server")
    store = DynamoWorkflowStore(
        DynamoSettings(
            table_name=f"llamaws-waits-{uuid.uuid4().hex[:10]}",
            endpoint_url=moto.endpoint,
            region_name="us-east-1",
            poll_interval=0.05,
        )
    )
    store.create_resources()
    return store


async def started_app(app_dir: Path, store: AbstractWorkflowStore) -> DeploymentApp:
    """The app, started, its startup resume of running handlers over.

    (That resume runs in the background; awaiting it keeps its store requests out of
    the tests' own.)
    """
    runtime = durable_runtime(store)
    app = create_app(
        resolve_deployment(app_dir),
        fresh_workflows(app_dir),
        store,
        lifespan=False,
        runtime=runtime,
        wait_sweep_interval=0.1,
    )
    await app.start()
    resume = runtime._decorated.resume_task  # type: ignore[attr-defined]
    if resume is not None:
        await resume
    return app


@dataclass
class Api:
    """The gate app's API in this process."""

    client: httpx.AsyncClient
    app: DeploymentApp

    async def start(self, workflow: str, **start_event: Any) -> str:
        response = await self.client.post(
            f"/workflows/{workflow}/run-nowait", json={"start_event": start_event}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["handler_id"])

    async def waits(self, handler_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/handlers/{handler_id}/waits")
        assert response.status_code == 200, response.text
        waits: list[dict[str, Any]] = response.json()["waits"]
        return waits

    async def wait_open(self, handler_id: str) -> dict[str, Any]:
        """The handler's one open wait, once it is there."""
        for _ in range(400):
            waits = await self.waits(handler_id)
            if waits:
                assert len(waits) == 1, waits
                return waits[0]
            await asyncio.sleep(0.025)
        raise AssertionError(f"no open wait for handler {handler_id}")

    async def finished(self, handler_id: str) -> dict[str, Any]:
        for _ in range(400):
            response = await self.client.get(f"/handlers/{handler_id}")
            handler: dict[str, Any] = response.json()
            if handler["status"] != "running":
                return handler
            await asyncio.sleep(0.025)
        raise AssertionError(f"handler {handler_id} still running")

    async def event_types(self, handler_id: str) -> list[str]:
        """Types of a finished run's events, as the default stream gives them."""
        response = await self.client.get(
            f"/events/{handler_id}", params={"after_sequence": "-1", "sse": "false"}
        )
        return [json.loads(line)["type"] for line in response.text.splitlines() if line.strip()]

    async def announced_wait(self, handler_id: str) -> dict[str, Any]:
        """The wait a run's stream announced: there even after the wait has ended."""
        response = await self.client.get(
            f"/events/{handler_id}", params={"after_sequence": "-1", "sse": "false"}
        )
        events = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        issued = [e["value"] for e in events if e["type"] == "WaitTokenIssued"]
        assert len(issued) == 1, events
        return dict(issued[0])

    async def token_call(self, token: str, action: str, body: Any = None) -> httpx.Response:
        return await self.client.post(f"/tokens/{token}/{action}", json=body)


@pytest.fixture(params=["sqlite", "dynamodb"])
async def api(request: pytest.FixtureRequest, gate_dir: Path, tmp_path: Path) -> AsyncIterator[Api]:
    store = open_store(request.param, tmp_path, request)
    app = await started_app(gate_dir, store)
    try:
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test/deployments/gate", timeout=30
        ) as client:
            yield Api(client, app)
    finally:
        await app.stop()


# -- issue, announce, list -------------------------------------------------------------------


async def test_a_waiting_run_lists_its_token_and_announces_it_in_its_stream(api: Api) -> None:
    handler_id = await api.start("gate", timeout_seconds=600)
    wait = await api.wait_open(handler_id)
    assert set(wait) == {
        "token",
        "waiter_id",
        "expected_events",
        "expires_at",
        "heartbeat_expires_at",
    }
    assert wait["waiter_id"] == "ask" and wait["expected_events"] == ["HumanResponseEvent"]
    assert wait["expires_at"] is not None and wait["heartbeat_expires_at"] is None
    assert len(base64.urlsafe_b64decode(wait["token"].rsplit(".", 1)[1] + "==")) >= 16
    described = (await api.client.get(f"/tokens/{wait['token']}")).json()
    assert described["status"] == "open" and described["handler_id"] == handler_id
    assert (await api.token_call(wait["token"], "success", ANSWER)).status_code == 200
    assert result_of(await api.finished(handler_id)) == "answer: yes"
    types = await api.event_types(handler_id)
    assert types.index("WaitTokenIssued") < types.index("Ask") < types.index("StopEvent")


async def test_wait_for_event_waits_get_a_token_for_the_awaited_type(api: Api) -> None:
    handler_id = await api.start("review")
    wait = await api.wait_open(handler_id)
    assert (wait["waiter_id"], wait["expected_events"]) == ("review", ["Verdict"])
    assert wait["expires_at"] is None  # no deadline anywhere
    assert (await api.token_call(wait["token"], "success", VERDICT)).status_code == 200
    assert result_of(await api.finished(handler_id)) == "verdict: ok"


async def test_openapi_documents_the_token_routes(api: Api) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    for path in (
        "/tokens/{token}",
        "/tokens/{token}/success",
        "/tokens/{token}/failure",
        "/tokens/{token}/heartbeat",
        "/handlers/{handler_id}/waits",
    ):
        assert path in paths
    assert set(paths["/tokens/{token}/success"]["post"]["responses"]) >= {
        "200", "400", "404", "409", "410",
    }  # fmt: skip


# -- failure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", ["gate", "review"])
async def test_a_rejection_the_workflow_handles_finishes_the_run(api: Api, workflow: str) -> None:
    handler_id = await api.start(workflow)
    token = (await api.wait_open(handler_id))["token"]
    failed = await api.token_call(token, "failure", {"error": "Rejected", "cause": "too risky"})
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    assert result_of(await api.finished(handler_id)) == "failed: Rejected: too risky"


@pytest.mark.parametrize("workflow", ["strict", "quiz"])
async def test_an_unhandled_rejection_fails_the_run_naming_the_wait_error_and_cause(
    api: Api, workflow: str
) -> None:
    handler_id = await api.start(workflow)
    wait = await api.wait_open(handler_id)
    failed = await api.token_call(wait["token"], "failure", {"error": "Rejected", "cause": "no"})
    assert failed.status_code == 200
    handler = await api.finished(handler_id)
    assert handler["status"] == "failed"
    assert f"wait '{wait['waiter_id']}' failed: Rejected: no" in handler["error"]


# -- deadlines -------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", ["gate", "review"])
async def test_a_passed_timeout_ends_the_wait_with_a_timeout(api: Api, workflow: str) -> None:
    handler_id = await api.start(workflow, timeout_seconds=0.3)
    # The wait may end before a poll of the open waits sees it: take the stream's token.
    assert result_of(await api.finished(handler_id)) == "timed out: Timeout"
    token = (await api.announced_wait(handler_id))["token"]
    late = await api.token_call(token, "success", ANSWER_OF[workflow])
    assert (late.status_code, late.json()["code"]) == (410, "TaskTimedOut")
    assert await api.waits(handler_id) == []


async def test_a_missed_heartbeat_ends_the_wait(api: Api) -> None:
    handler_id = await api.start("review", heartbeat_seconds=0.3, timeout_seconds=600)
    assert result_of(await api.finished(handler_id)) == "timed out: HeartbeatTimeout"
    token = (await api.announced_wait(handler_id))["token"]
    described = (await api.client.get(f"/tokens/{token}")).json()
    assert (described["status"], described["error"]) == ("timed_out", "HeartbeatTimeout")


async def test_heartbeats_keep_a_wait_open_past_its_heartbeat_deadline(api: Api) -> None:
    handler_id = await api.start("gate", heartbeat_seconds=2)
    wait = await api.wait_open(handler_id)
    first = deadline = wait["heartbeat_expires_at"]
    started = time.monotonic()
    while time.monotonic() - started < 4.5:  # well past 2 s without heartbeats
        # A heartbeat in the second half of each window: a loaded machine has a second.
        await asyncio.sleep(max(seconds_until(deadline) - 1, 0))
        beat = await api.token_call(wait["token"], "heartbeat")
        assert beat.status_code == 200, beat.text
        deadline = beat.json()["heartbeat_expires_at"]
    assert deadline > first and await api.waits(handler_id)
    assert (await api.token_call(wait["token"], "success", ANSWER)).status_code == 200
    assert result_of(await api.finished(handler_id)) == "answer: yes"


# -- exactly once ----------------------------------------------------------------------------


async def test_of_twenty_racing_completions_exactly_one_wins(api: Api) -> None:
    handler_id = await api.start("gate")
    token = (await api.wait_open(handler_id))["token"]

    async def by_token(n: int) -> httpx.Response:
        body = {"event": {"type": "HumanResponseEvent", "value": {"response": f"t{n}"}}}
        return await api.token_call(token, "success", body)

    async def by_post(n: int) -> httpx.Response:
        body = {"event": {"type": "HumanResponseEvent", "value": {"response": f"p{n}"}}}
        return await api.client.post(f"/events/{handler_id}", json=body)

    calls = [by_token(n) if n % 2 else by_post(n) for n in range(20)]
    answers = await asyncio.gather(*calls)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [409] * 19, [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 200)
    result = result_of(await api.finished(handler_id))
    sent = json.loads(winner.request.content)["event"]["value"]["response"]
    assert result == f"answer: {sent}"
    assert (await api.event_types(handler_id)).count("StopEvent") == 1


async def test_a_plain_post_events_consumes_the_token(api: Api) -> None:
    handler_id = await api.start("gate")
    token = (await api.wait_open(handler_id))["token"]
    assert (await api.client.post(f"/events/{handler_id}", json=ANSWER)).status_code == 200
    reused = await api.token_call(token, "success", ANSWER)
    assert (reused.status_code, reused.json()["code"]) == (409, "TaskAlreadyCompleted")
    assert (await api.client.get(f"/tokens/{token}")).json()["ended_by"] == "event"
    assert result_of(await api.finished(handler_id)) == "answer: yes"


# -- bad tokens --------------------------------------------------------------------------------


async def test_malformed_and_forged_tokens_are_invalid_unknown_ones_do_not_exist(
    api: Api,
) -> None:
    handler_id = await api.start("gate")
    token = (await api.wait_open(handler_id))["token"]
    prefix, handler, secret = token.split(".")
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for bad in ("nope", token[:-3], f"{prefix}.{handler}.{flipped}", "wt1..x", "x" * 600):
        answer = await api.token_call(bad, "success", ANSWER)
        assert (answer.status_code, answer.json()["code"]) == (400, "InvalidToken"), bad
    unknown = _forge(handler_id)  # well formed, never issued
    for action in ("success", "failure", "heartbeat"):
        answer = await api.token_call(unknown, action, ANSWER)
        assert (answer.status_code, answer.json()["code"]) == (404, "TaskDoesNotExist")
    assert (await api.client.get(f"/tokens/{unknown}")).status_code == 404
    slashed = await api.client.post(f"/tokens/{token}/x/success", json=ANSWER)
    assert (slashed.status_code, slashed.json()["code"]) == (400, "InvalidToken")
    assert (await api.client.delete(f"/tokens/{token}/success")).status_code == 405
    assert (await api.waits(handler_id))[0]["token"] == token  # nothing changed


async def test_a_used_token_is_already_completed_and_a_wrong_event_type_is_refused(
    api: Api,
) -> None:
    handler_id = await api.start("gate")
    token = (await api.wait_open(handler_id))["token"]
    wrong = await api.token_call(token, "success", VERDICT)
    assert (wrong.status_code, wrong.json()["code"]) == (400, "InvalidEvent")
    assert "HumanResponseEvent" in wrong.json()["detail"]
    assert (await api.token_call(token, "success", ANSWER)).status_code == 200
    for action in ("success", "failure", "heartbeat"):
        again = await api.token_call(token, action, ANSWER)
        assert (again.status_code, again.json()["code"]) == (409, "TaskAlreadyCompleted")


async def test_a_token_for_one_run_cannot_touch_another(api: Api) -> None:
    first = await api.start("gate")
    second = await api.start("gate")
    token = (await api.wait_open(first))["token"]
    other = (await api.wait_open(second))["token"]
    # A's secret under B's handler id (checksum recomputed): not B's wait.
    assert (await api.token_call(_forge(second, like=token), "success", ANSWER)).status_code == 404
    assert (await api.token_call(token, "success", ANSWER)).status_code == 200
    assert result_of(await api.finished(first)) == "answer: yes"
    assert (await api.waits(second))[0]["token"] == other
    assert (await api.client.get(f"/handlers/{second}")).json()["status"] == "running"


async def test_waits_of_an_unknown_handler_is_404(api: Api) -> None:
    assert (await api.client.get("/handlers/nope/waits")).status_code == 404


def _forge(handler_id: str, like: str | None = None) -> str:
    """A well-formed token for ``handler_id`` (reusing ``like``'s random part)."""
    from llamaws.adapter.waits import tokens

    random = base64.urlsafe_b64decode(like.rsplit(".", 1)[1] + "==")[:24] if like else b"\x01" * 24
    secret = tokens._b64(random + tokens._check(handler_id, random))
    forged = f"wt1.{tokens._b64(handler_id.encode())}.{secret}"
    assert parse_token(forged) == (handler_id, secret)
    return forged


# -- deployment defaults ------------------------------------------------------------------


async def test_the_deployments_default_deadline_applies_when_the_event_sets_none(
    tmp_path: Path,
) -> None:
    app_dir = write_gate_app(tmp_path)
    pyproject = app_dir / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.llamaws]\nwait_timeout_seconds = 0.3\n")
    store = SqliteWorkflowStore(str(tmp_path / "workflows.db"), poll_interval=0.05)
    app = await started_app(app_dir, store)
    try:
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test/deployments/gate"
        ) as client:
            api = Api(client, app)
            handler_id = await api.start("review")  # the waiter event sets no deadline
            assert result_of(await api.finished(handler_id)) == "timed out: Timeout"
            assert (await api.announced_wait(handler_id))["expires_at"] is not None
    finally:
        await app.stop()


@pytest.mark.parametrize("value", ["-1", "0", '"soon"', "true"])
def test_a_bad_default_deadline_is_a_config_error_naming_the_key(
    tmp_path: Path, value: str
) -> None:
    app_dir = write_gate_app(tmp_path)
    pyproject = app_dir / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + f"\n[tool.llamaws]\nwait_heartbeat_seconds = {value}\n"
    )
    with pytest.raises(ConfigError, match="wait_heartbeat_seconds must be a positive number"):
        wait_defaults(resolve_deployment(app_dir))
