"""The workflow API of ``llamaws serve``, driven as users drive it.

A real emulator process per example app, once on the embedded SQLite store and
once on DynamoDB (the moto server); the official ``llama-agents-client`` for the
happy paths and raw httpx where status codes and bodies matter. Expected statuses
and messages are the reference server's (REFERENCE.md, wire format).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.client import WorkflowClient

from .support import Emulator, free_port, wait_until

pytestmark = pytest.mark.timeout(60)


def _serve(
    tmp_path_factory: pytest.TempPathFactory, example: str, store_args: list[str]
) -> Iterator[Emulator]:
    import shutil

    from .support import EXAMPLES

    app_dir = tmp_path_factory.mktemp(example) / example
    shutil.copytree(EXAMPLES / example, app_dir)
    emulator = Emulator(Path(app_dir), free_port(), store_args).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def hello(
    tmp_path_factory: pytest.TempPathFactory, emulator_store_args: list[str]
) -> Iterator[Emulator]:
    yield from _serve(tmp_path_factory, "hello", emulator_store_args)


@pytest.fixture(scope="module")
def hitl(
    tmp_path_factory: pytest.TempPathFactory, emulator_store_args: list[str]
) -> Iterator[Emulator]:
    yield from _serve(tmp_path_factory, "hitl", emulator_store_args)


def client_for(emulator: Emulator, deployment: str) -> WorkflowClient:
    return WorkflowClient(base_url=f"{emulator.url}/deployments/{deployment}")


def api(emulator: Emulator, deployment: str) -> httpx.Client:
    return httpx.Client(base_url=f"{emulator.url}/deployments/{deployment}", timeout=20)


def sse_events(body: str) -> list[tuple[int, dict[str, Any]]]:
    """``(id, data)`` of each SSE event in ``body``."""
    found = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
        )
        if "data" in fields:
            found.append((int(fields["id"]), json.loads(fields["data"])))
    return found


# -- the client's happy paths ------------------------------------------------------


async def test_client_lists_the_configured_workflows(hitl: Emulator) -> None:
    listed = await client_for(hitl, "hitl").list_workflows()
    assert sorted(listed.workflows) == ["approval", "ask", "quiz"]


async def test_client_run_returns_the_completed_handler(hello: Emulator) -> None:
    handler = await client_for(hello, "hello").run_workflow("greet", start_event={"name": "Ada"})
    assert handler.status == "completed"
    assert handler.result is not None
    assert handler.result.value == {"result": "Hello, Ada!"}


async def test_client_streams_events_of_a_nowait_run_to_the_stop_event(hello: Emulator) -> None:
    client = client_for(hello, "hello")
    handler = await client.run_workflow_nowait("greet", start_event={"name": "Bo"})
    types = [event.type async for event in client.get_workflow_events(handler.handler_id)]
    assert types[-1] == "StopEvent"
    done = await client.wait_for_handler(handler.handler_id, timeout=10, poll_interval=0.05)
    assert done.status == "completed"


async def test_client_answers_an_input_required_event(hitl: Emulator) -> None:
    client = client_for(hitl, "hitl")
    handler = await client.run_workflow_nowait("ask", start_event={"prompt": "Colour?"})
    async for event in client.get_workflow_events(handler.handler_id):
        if event.type == "PromptEvent":
            assert event.value["prompt"] == "Colour?"
            sent = await client.send_event(
                handler.handler_id, {"type": "HumanResponseEvent", "value": {"response": "blue"}}
            )
            assert sent.status == "sent"
    done = await client.wait_for_handler(handler.handler_id, timeout=10, poll_interval=0.05)
    assert done.result is not None and done.result.value == {"result": "You said: blue"}


async def test_client_answers_a_wait_for_event_with_a_typed_event(hitl: Emulator) -> None:
    client = client_for(hitl, "hitl")
    handler = await client.run_workflow_nowait("quiz", start_event={"question": "6x7?"})
    async for event in client.get_workflow_events(handler.handler_id):
        if event.type == "QuestionEvent":
            await client.send_event(
                handler.handler_id, {"type": "AnswerEvent", "value": {"answer": "42"}}
            )
    done = await client.wait_for_handler(handler.handler_id, timeout=10, poll_interval=0.05)
    assert done.result is not None and done.result.value == {"result": "Answer: 42"}


async def test_client_filters_handlers_by_status_and_workflow(hitl: Emulator) -> None:
    client = client_for(hitl, "hitl")
    waiting = await client.run_workflow_nowait("ask", start_event={})
    listed = await client.get_handlers(status=["running"], workflow_name=["ask"])
    assert waiting.handler_id in {h.handler_id for h in listed.handlers}
    assert all(h.workflow_name == "ask" and h.status == "running" for h in listed.handlers)
    none_there = await client.get_handlers(status=["running"], workflow_name=["nope"])
    assert none_there.handlers == []


async def test_client_cancels_then_purges_a_handler(hitl: Emulator) -> None:
    client = client_for(hitl, "hitl")
    handler = await client.run_workflow_nowait("ask", start_event={})
    cancelled = await client.cancel_handler(handler.handler_id)
    assert cancelled.status == "cancelled"
    with api(hitl, "hitl") as http:
        response = http.get(f"/handlers/{handler.handler_id}")
        assert response.status_code == 500
        assert response.json()["status"] == "cancelled"
    purged = await client.cancel_handler(handler.handler_id, purge=True)
    assert purged.status == "deleted"
    with api(hitl, "hitl") as http:
        assert http.get(f"/handlers/{handler.handler_id}").status_code == 404


# -- wire format and status codes ----------------------------------------------------


def test_run_accepts_kwargs_and_returns_handler_data(hello: Emulator) -> None:
    with api(hello, "hello") as http:
        response = http.post("/workflows/greet/run", json={"kwargs": {"name": "Cy"}})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["result"]["value"] == {"result": "Hello, Cy!"}
    assert body["result"]["type"] == "StopEvent"
    assert len(body["handler_id"]) == 10 and len(body["run_id"]) == 10
    assert {"started_at", "updated_at", "completed_at", "error"} <= body.keys()


def test_handler_status_codes_follow_the_run(hitl: Emulator) -> None:
    with api(hitl, "hitl") as http:
        handler_id = http.post("/workflows/ask/run-nowait", json={"start_event": {}}).json()[
            "handler_id"
        ]
        assert http.get(f"/handlers/{handler_id}").status_code == 202
        http.post(
            f"/events/{handler_id}",
            json={"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}},
        )
        wait_until(lambda: http.get(f"/handlers/{handler_id}").status_code == 200)
        result = http.get(f"/results/{handler_id}")
        assert result.status_code == 200
        assert result.json()["result"] == "You said: x"  # the deprecated route unwraps it


def test_event_stream_as_sse_honours_after_sequence_and_last_event_id(hello: Emulator) -> None:
    with api(hello, "hello") as http:
        handler_id = http.post("/workflows/greet/run", json={"start_event": {}}).json()[
            "handler_id"
        ]
        internal = {"include_internal": "true"}
        everything = sse_events(
            http.get(f"/events/{handler_id}", params={"after_sequence": -1, **internal}).text
        )
        ids = [seq for seq, _ in everything]
        assert ids == list(range(len(ids))) and len(ids) >= 3
        assert everything[-1][1]["type"] == "StopEvent"
        after_first = sse_events(
            http.get(f"/events/{handler_id}", params={"after_sequence": ids[0], **internal}).text
        )
        assert [seq for seq, _ in after_first] == ids[1:]
        resumed = sse_events(
            http.get(
                f"/events/{handler_id}",
                params={"after_sequence": -1, **internal},
                headers={"Last-Event-ID": str(ids[0])},
            ).text
        )
        assert [seq for seq, _ in resumed] == ids[1:]


def test_event_stream_as_ndjson_includes_internal_events_on_request(hello: Emulator) -> None:
    with api(hello, "hello") as http:
        handler_id = http.post("/workflows/greet/run", json={"start_event": {}}).json()[
            "handler_id"
        ]
        public = http.get(f"/events/{handler_id}", params={"sse": "false", "after_sequence": -1})
        everything = http.get(
            f"/events/{handler_id}",
            params={"sse": "false", "after_sequence": -1, "include_internal": "true"},
        )
    assert public.headers["content-type"].startswith("application/x-ndjson")
    public_lines = [json.loads(line) for line in public.text.splitlines() if line]
    all_lines = [json.loads(line) for line in everything.text.splitlines() if line]
    assert public_lines[-1]["type"] == "StopEvent"
    assert len(all_lines) > len(public_lines)


def test_unknown_workflow_is_404(hello: Emulator) -> None:
    with api(hello, "hello") as http:
        response = http.post("/workflows/nope/run", json={"start_event": {}})
    assert response.status_code == 404
    assert response.json() == {"detail": "Workflow not found"}


def test_invalid_json_body_is_400(hello: Emulator) -> None:
    with api(hello, "hello") as http:
        response = http.post("/workflows/greet/run", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Invalid JSON body")


def test_event_of_unknown_type_is_400_and_the_run_keeps_waiting(hitl: Emulator) -> None:
    with api(hitl, "hitl") as http:
        handler_id = http.post("/workflows/ask/run-nowait", json={"start_event": {}}).json()[
            "handler_id"
        ]
        response = http.post(
            f"/events/{handler_id}", json={"event": {"type": "NoSuchEvent", "value": {}}}
        )
        assert response.status_code == 400
        assert "NoSuchEvent" in response.json()["detail"]
        assert http.get(f"/handlers/{handler_id}").status_code == 202


def test_event_to_unknown_handler_is_404(hitl: Emulator) -> None:
    with api(hitl, "hitl") as http:
        response = http.post(
            "/events/nonexistent",
            json={"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}},
        )
    assert response.status_code == 404
    assert response.json() == {"detail": "Handler not found"}


def test_event_to_finished_handler_is_409(hello: Emulator) -> None:
    with api(hello, "hello") as http:
        handler_id = http.post("/workflows/greet/run", json={"start_event": {}}).json()[
            "handler_id"
        ]
        response = http.post(
            f"/events/{handler_id}", json={"event": {"type": "StopEvent", "value": {}}}
        )
    assert response.status_code == 409
    assert response.json() == {"detail": "Workflow already completed"}


def test_drained_stream_of_completed_run_is_204(hello: Emulator) -> None:
    with api(hello, "hello") as http:
        handler_id = http.post("/workflows/greet/run", json={"start_event": {}}).json()[
            "handler_id"
        ]
        http.get(f"/events/{handler_id}", params={"after_sequence": -1})
        last = sse_events(http.get(f"/events/{handler_id}", params={"after_sequence": -1}).text)
        response = http.get(f"/events/{handler_id}", params={"after_sequence": last[-1][0]})
    assert response.status_code == 204


# -- the URL layout around the API ---------------------------------------------------


def test_root_and_deployment_paths_redirect_like_llamactl(hello: Emulator) -> None:
    with httpx.Client(base_url=hello.url) as http:
        root = http.get("/")
        assert (root.status_code, root.headers["location"]) == (307, "/deployments/hello/")
        for path in ("/deployments/hello", "/deployments/hello/"):
            response = http.get(path)
            assert (response.status_code, response.headers["location"]) == (
                307,
                "/deployments/hello/docs",
            )


@pytest.mark.parametrize("path", ["/health", "/healthz", "/livez", "/readyz"])
def test_health_paths_answer_healthy(hello: Emulator, path: str) -> None:
    response = httpx.get(hello.url + path)
    assert (response.status_code, response.json()) == (200, {"status": "Healthy"})


def test_deployment_health_docs_and_openapi(hello: Emulator) -> None:
    with api(hello, "hello") as http:
        assert http.get("/health").json()["status"] == "healthy"
        docs = http.get("/docs")
        assert docs.status_code == 200 and "/deployments/hello/workflows" in docs.text
        schema = http.get("/openapi.json").json()
    assert "/workflows/{name}/run" in schema["paths"]
    assert schema["servers"] == [{"url": "/deployments/hello"}]


def test_other_deployment_names_are_404_naming_the_deployments(hello: Emulator) -> None:
    response = httpx.get(f"{hello.url}/deployments/other/workflows")
    assert response.status_code == 404
    assert response.json() == {"detail": "Deployment 'other' not found. Deployments: hello"}
