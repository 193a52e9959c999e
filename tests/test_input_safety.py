"""Bad input can't hurt a run: every request here once harmed a run or answered 5xx.

The app of an example, in process, on the embedded SQLite store, driven through
httpx's ASGI transport; each test names the behaviour it pins (the reference
server's, llama-agents-server 0.8.0, is in the comment).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.server import SqliteWorkflowStore
from workflows.events import StartEvent, StopEvent

from llamaws.adapter.acceptance import run_acceptance
from llamaws.adapter.app import create_app
from llamaws.adapter.config import resolve_deployment
from llamaws.adapter.input_guard import MAX_REQUEST_BYTES
from llamaws.adapter.loader import LoadedWorkflow, load_workflows
from llamaws.local.preview import preview_routes

from .support import EXAMPLES

ANSWER = {"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}}


def fresh_workflows(example: str) -> list[LoadedWorkflow]:
    """An example's workflows as new instances (an instance binds to one server)."""
    loaded = load_workflows(resolve_deployment(EXAMPLES / example))
    return [
        LoadedWorkflow(item.name, type(item.workflow)(timeout=None), item.additional_events)
        for item in loaded
    ]


@dataclass
class Served:
    """A client on the app's workflow API, and the store behind it."""

    client: httpx.AsyncClient
    store: SqliteWorkflowStore

    async def waiting(self, workflow: str, prompt_type: str) -> str:
        """Start ``workflow``; its handler id once it published ``prompt_type``."""
        started = await self.client.post(
            f"/workflows/{workflow}/run-nowait", json={"start_event": {}}
        )
        assert started.status_code == 200, started.text
        run_id = started.json()["run_id"]
        for _ in range(250):
            events = await self.store.query_events(run_id)
            if any(stored.event.type == prompt_type for stored in events):
                return str(started.json()["handler_id"])
            await asyncio.sleep(0.02)
        raise AssertionError(f"{workflow} never published {prompt_type}")

    async def status(self, handler_id: str) -> str:
        return str((await self.client.get(f"/handlers/{handler_id}")).json()["status"])

    async def finished(self, handler_id: str) -> dict[str, Any]:
        for _ in range(250):
            response = await self.client.get(f"/handlers/{handler_id}")
            if response.json()["status"] != "running":
                return dict(response.json())
            await asyncio.sleep(0.02)
        raise AssertionError(f"handler {handler_id} never finished")


@asynccontextmanager
async def served(tmp_path: Path, example: str = "hitl", **options: Any) -> AsyncIterator[Served]:
    deployment = resolve_deployment(EXAMPLES / example)
    store = SqliteWorkflowStore(str(tmp_path / "workflows.db"), poll_interval=0.02)
    app = create_app(deployment, fresh_workflows(example), store, lifespan=False, **options)
    await app.start()
    try:
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://test/deployments/{example}", timeout=10
        ) as client:
            yield Served(client, store)
    finally:
        await app.stop()


@pytest.fixture
async def hitl(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(tmp_path) as app:
        yield app


# -- 1. events must reach a step, or be refused ----------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        {"type": "PromptEvent", "value": {"prompt": "forged"}},  # the run's own prompt
        {"type": "StopEvent", "value": {"result": "forged"}},
        {"type": "StartEvent", "value": {}},  # would re-run the first step
    ],
    ids=["own-prompt", "stop", "start"],
)
async def test_event_the_run_cannot_take_is_400_naming_what_it_can(
    hitl: Served, event: dict[str, Any]
) -> None:
    # Reference server: 200 "sent", then the event is dropped (or re-runs `ask`).
    handler_id = await hitl.waiting("ask", "PromptEvent")
    refused = await hitl.client.post(f"/events/{handler_id}", json={"event": event})
    assert refused.status_code == 400, refused.text
    assert event["type"] in refused.json()["detail"]
    assert "can take now: HumanResponseEvent" in refused.json()["detail"]
    assert await hitl.status(handler_id) == "running"
    assert (await hitl.client.post(f"/events/{handler_id}", json=ANSWER)).status_code == 200
    done = await hitl.finished(handler_id)
    assert done["result"]["value"] == {"result": "You said: blue"}


async def test_human_response_without_response_is_400_and_the_run_keeps_waiting(
    hitl: Served,
) -> None:
    # Reference server: 200, then the run fails on `ev.response` and the real answer gets 409.
    handler_id = await hitl.waiting("ask", "PromptEvent")
    empty = {"event": {"type": "HumanResponseEvent", "value": {}}}
    refused = await hitl.client.post(f"/events/{handler_id}", json=empty)
    assert refused.status_code == 400
    assert "needs a 'response'" in refused.json()["detail"]
    assert (await hitl.client.post(f"/events/{handler_id}", json=ANSWER)).status_code == 200
    assert (await hitl.finished(handler_id))["status"] == "completed"


async def test_waited_for_type_is_taken_and_the_waiter_event_is_not(hitl: Served) -> None:
    handler_id = await hitl.waiting("quiz", "QuestionEvent")
    question = {"event": {"type": "QuestionEvent", "value": {"question": "forged"}}}
    refused = await hitl.client.post(f"/events/{handler_id}", json=question)
    assert refused.status_code == 400
    assert "can take now: AnswerEvent" in refused.json()["detail"]
    answer = {"event": {"type": "AnswerEvent", "value": {"answer": "42"}}}
    assert (await hitl.client.post(f"/events/{handler_id}", json=answer)).status_code == 200
    assert (await hitl.finished(handler_id))["result"]["value"] == {"result": "Answer: 42"}


async def test_event_for_a_step_the_workflow_has_not_is_400(hitl: Served) -> None:
    # Reference server: 500 "Failed to send event: ...".
    handler_id = await hitl.waiting("ask", "PromptEvent")
    refused = await hitl.client.post(f"/events/{handler_id}", json={**ANSWER, "step": "nope"})
    assert refused.status_code == 400
    assert "no step 'nope'" in refused.json()["detail"]
    targeted = await hitl.client.post(f"/events/{handler_id}", json={**ANSWER, "step": "answer"})
    assert targeted.status_code == 200


async def test_run_acceptance_reads_open_waits_from_the_journal(hitl: Served) -> None:
    handler_id = await hitl.waiting("quiz", "QuestionEvent")
    handler = (await hitl.client.get(f"/handlers/{handler_id}")).json()
    quiz = next(item.workflow for item in fresh_workflows("hitl") if item.name == "quiz")
    acceptance = await run_acceptance(hitl.store, quiz, handler["run_id"])
    assert [(w.step, w.waiter_id, w.event_type.__name__) for w in acceptance.waits] == [
        ("quiz", "quiz-answer", "AnswerEvent")
    ]
    assert acceptance.type_names() == ["AnswerEvent"]
    assert not acceptance.accepts(StartEvent()) and not acceptance.accepts(StopEvent())


# -- 2. handler ids are never reused ---------------------------------------------------


async def test_handler_id_of_a_finished_handler_is_409_and_its_result_stays(
    tmp_path: Path,
) -> None:
    # Reference server: the second run replaced the first one's result.
    async with served(tmp_path, "hello") as hello:
        first = await hello.client.post(
            "/workflows/greet/run",
            json={"handler_id": "greeting-1", "start_event": {"name": "Ada"}},
        )
        assert first.status_code == 200
        for route in ("run", "run-nowait"):
            again = await hello.client.post(
                f"/workflows/greet/{route}",
                json={"handler_id": "greeting-1", "start_event": {"name": "Bob"}},
            )
            assert again.status_code == 409, again.text
            assert "never reused" in again.json()["detail"]
        kept = (await hello.client.get("/handlers/greeting-1")).json()
        assert kept["result"]["value"] == {"result": "Hello, Ada!"}


async def test_concurrent_runs_under_one_new_handler_id_start_once(tmp_path: Path) -> None:
    async with served(tmp_path, "hello") as hello:
        body = {"handler_id": "once", "start_event": {"name": "Ada"}}
        answers = await asyncio.gather(
            *(hello.client.post("/workflows/greet/run-nowait", json=body) for _ in range(5))
        )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409]


@pytest.mark.parametrize("handler_id", ["a/b/../c", "line\nbreak", "x" * 129, "", [1], 7, "sp ce"])
async def test_unreadable_handler_id_is_400_and_nothing_is_started(
    tmp_path: Path, handler_id: object
) -> None:
    # Reference server: stored, and never readable through a URL (a list: a 500).
    async with served(tmp_path, "hello") as hello:
        refused = await hello.client.post(
            "/workflows/greet/run-nowait", json={"handler_id": handler_id}
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"].startswith("Invalid handler_id")
        assert (await hello.client.get("/handlers")).json()["handlers"] == []


async def test_client_chosen_handler_id_in_the_allowed_alphabet_is_kept(tmp_path: Path) -> None:
    async with served(tmp_path, "hello") as hello:
        chosen = "order-42:v1.2_x"
        started = await hello.client.post("/workflows/greet/run", json={"handler_id": chosen})
        assert started.status_code == 200 and started.json()["handler_id"] == chosen
        assert (await hello.client.get(f"/handlers/{chosen}")).status_code == 200


# -- 3. no 5xx from bad input ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/events/{id}", [1, 2], 400),  # reference: 500 'list' has no 'get'
        ("POST", "/events/{id}", {"event": 5}, 400),
        ("POST", "/events/{id}", {"event": ANSWER["event"], "step": ["answer"]}, 400),
        ("POST", "/workflows/ask/run-nowait", ["start_event"], 400),
        ("GET", "/events/{id}?after_sequence=99999999999999999999999", None, 400),  # 500
        ("GET", "/events/{id}?after_sequence=-2", None, 400),
        ("GET", "/handlers?status=garbage", None, 400),  # reference: 200, nothing listed
        ("GET", "/handlers/a%0Ab", None, 404),
        ("PUT", "/handlers", None, 405),
    ],
)
async def test_malformed_request_is_a_4xx(
    hitl: Served, method: str, path: str, body: object, status: int
) -> None:
    handler_id = await hitl.waiting("ask", "PromptEvent")
    response = await hitl.client.request(
        method, path.replace("{id}", handler_id), json=body if body is not None else None
    )
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert await hitl.status(handler_id) == "running"


async def test_last_event_id_beyond_64_bits_is_400(hitl: Served) -> None:
    handler_id = await hitl.waiting("ask", "PromptEvent")
    response = await hitl.client.get(
        f"/events/{handler_id}", headers={"Last-Event-ID": "1" + "0" * 30}
    )
    assert response.status_code == 400


async def test_method_not_allowed_carries_allow(hitl: Served) -> None:
    response = await hitl.client.delete("/workflows")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_preview_path_the_os_cannot_name_is_not_a_server_error(tmp_path: Path) -> None:
    from starlette.applications import Starlette

    (tmp_path / "index.html").write_text("<!doctype html>")
    app = Starlette(routes=preview_routes("/ui", tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        for path in ("/ui/%00", "/ui/a%00.js", "/ui/%ED%A0%80.css"):
            response = await client.get(path)
            assert response.status_code < 500, (path, response.status_code)


def test_served_openapi_is_valid_for_the_version_it_declares() -> None:
    from llama_agents.server import WorkflowServer
    from openapi_spec_validator import validate

    from llamaws.adapter.openapi import served_openapi

    upstream = WorkflowServer().openapi_schema()
    with pytest.raises(Exception):  # noqa: B017 - the reference schema is invalid 3.0
        validate(json.loads(json.dumps(upstream)))
    served = served_openapi(upstream, base_path="/deployments/x", workflow_names=["greet"])
    document = json.loads(json.dumps(served))
    validate(document)
    assert document["openapi"] == "3.0.3" and '"type": "null"' not in json.dumps(document)
    post_events = document["paths"]["/events/{handler_id}"]["post"]["responses"]
    assert {"200", "400", "404", "409", "413"} <= post_events.keys()


# -- 4. a finished run's stream is quiet -----------------------------------------------


async def test_drained_stream_of_a_finished_run_is_an_empty_204(tmp_path: Path) -> None:
    async with served(tmp_path, "hello") as hello:
        done = (await hello.client.post("/workflows/greet/run", json={})).json()
        response = await hello.client.get(f"/events/{done['handler_id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers


# -- 5. the same request limit as the cloud -----------------------------------------------


async def test_body_over_lambdas_request_limit_is_413_saying_why(tmp_path: Path) -> None:
    # Reference server (and `llamactl serve`): 10 MB accepted and stored.
    async with served(tmp_path, "hello", too_large_hint="(lift it: --no-request-limit)") as hello:
        big = {"start_event": {"name": "x" * MAX_REQUEST_BYTES}}
        refused = await hello.client.post("/workflows/greet/run-nowait", json=big)
        assert refused.status_code == 413
        detail = refused.json()["detail"]
        assert "request limit of AWS Lambda" in detail and "--no-request-limit" in detail
        assert (await hello.client.get("/handlers")).json()["handlers"] == []


async def test_request_limit_can_be_lifted_locally(tmp_path: Path) -> None:
    async with served(tmp_path, "hello", max_request_bytes=None) as hello:
        big = {"start_event": {"name": "x" * (MAX_REQUEST_BYTES + 1)}}
        accepted = await hello.client.post("/workflows/greet/run-nowait", json=big)
        assert accepted.status_code == 200


def test_lambda_response_of_a_bodyless_status_is_sent_without_a_body() -> None:
    # `serve --lambda` used to forward a 204's JSON body: h11 refused it with a traceback.
    from llamaws.local.lambda_events import http_response

    status, headers, body = http_response(
        {
            "statusCode": 204,
            "headers": {"content-type": "application/json", "content-length": "2", "x-a": "1"},
            "body": "{}",
        }
    )
    assert (status, headers, body) == (204, [("x-a", "1")], b"")
