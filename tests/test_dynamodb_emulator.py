"""``llamaws serve --persistence dynamodb`` on a moto server: runs survive restarts."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from llamaws.adapter.store.table import handler_key, run_key

from .engines import MotoServer, dynamodb_serve_args
from .support import Emulator, wait_until

pytestmark = pytest.mark.timeout(90)

ANSWER = {"event": {"type": "HumanResponseEvent", "value": {"response": "blue"}}}
QUIZ_ANSWER = {"event": {"type": "AnswerEvent", "value": {"answer": "42"}}}


def finished(api: str, handler_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{api}/handlers/{handler_id}")
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


def waiting(api: str, handler_id: str) -> bool:
    return httpx.get(f"{api}/handlers/{handler_id}").status_code == 202


def test_waiting_runs_finish_after_a_restart_with_state_in_dynamodb(
    moto_server: MotoServer,
    dynamo_table_name: str,
    example_copy: Callable[[str], Path],
    emulator_factory: Callable[..., Emulator],
) -> None:
    app_dir = example_copy("hitl")
    emulator = emulator_factory(app_dir, *dynamodb_serve_args(moto_server, dynamo_table_name))
    api = f"{emulator.url}/deployments/hitl"
    ask = httpx.post(f"{api}/workflows/ask/run-nowait", json={"start_event": {}}).json()
    quiz = httpx.post(f"{api}/workflows/quiz/run-nowait", json={"start_event": {}}).json()
    for handler in (ask, quiz):
        wait_until(partial(waiting, api, handler["handler_id"]), what="the run to start")
    # Both runs parked: their prompt is in the run's event log, in DynamoDB.
    client = boto3.client("dynamodb", endpoint_url=moto_server.endpoint)

    def logged(run_id: str, prompt: str) -> bool:
        items = client.query(
            TableName=dynamo_table_name,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :e)",
            ExpressionAttributeValues={":pk": {"S": run_key(run_id)}, ":e": {"S": "E#"}},
        )["Items"]
        return any(prompt in item["data"]["S"] for item in items)

    for handler, prompt in ((ask, "InputRequiredEvent"), (quiz, "QuestionEvent")):
        wait_until(partial(logged, handler["run_id"], prompt), what=f"{prompt} logged")

    emulator.restart()
    assert httpx.post(f"{api}/events/{ask['handler_id']}", json=ANSWER).status_code == 200
    assert httpx.post(f"{api}/events/{quiz['handler_id']}", json=QUIZ_ANSWER).status_code == 200

    done_ask = wait_until(partial(finished, api, ask["handler_id"]), what="ask to complete")
    done_quiz = wait_until(partial(finished, api, quiz["handler_id"]), what="quiz to complete")
    assert done_ask["result"]["value"] == {"result": "You said: blue"}
    assert done_quiz["result"]["value"] == {"result": "Answer: 42"}
    assert not (app_dir / "workflows.db").exists()
    item = client.get_item(
        TableName=dynamo_table_name,
        Key={k: {"S": v} for k, v in handler_key(ask["handler_id"]).items()},
    )["Item"]
    assert item["status"] == {"S": "completed"}
