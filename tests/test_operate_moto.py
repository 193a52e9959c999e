"""The deploy-and-operate parts of ``infra`` against the moto server over HTTP: secrets
push (both stores), what the function then reads, ``logs --follow``, and the open-waits
hook of ``status``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from llamaws.adapter.config import resolve_deployment
from llamaws.adapter.errors import ConfigError
from llamaws.adapter.secrets import load_app_secrets
from llamaws.adapter.store.table import create_table, wait_due_key, wait_key
from llamaws.infra.logs import follow
from llamaws.infra.secret_values import (
    SecretStore,
    env_file_values,
    masked,
    push_values,
    read_values,
)
from llamaws.infra.status import count_runs, open_waits
from llamaws.infra.target import AwsTarget

from .engines import MotoServer


@pytest.fixture
def target(moto_server: MotoServer) -> AwsTarget:
    return AwsTarget.resolve(moto_server.endpoint, "us-east-1", {})


@pytest.fixture
def ssm_store() -> SecretStore:
    return SecretStore("ssm", f"/llamaws/llamaws-{uuid.uuid4().hex[:8]}/env")


def test_push_makes_ssm_hold_exactly_the_values(target: AwsTarget, ssm_store: SecretStore) -> None:
    first = push_values(target, ssm_store, {"API_KEY": "k1", "GREETING": "hi", "OLD": "x"})
    assert (first.added, first.changed, first.removed) == (("API_KEY", "GREETING", "OLD"), (), ())
    second = push_values(target, ssm_store, {"API_KEY": "k2", "GREETING": "hi", "NEW": "n"})
    assert second.added == ("NEW",) and second.changed == ("API_KEY",)
    assert second.removed == ("OLD",) and second.unchanged == ("GREETING",)
    stored = read_values(target, ssm_store)
    assert {n: v.value for n, v in stored.items()} == {
        "API_KEY": "k2",
        "GREETING": "hi",
        "NEW": "n",
    }
    assert stored["API_KEY"].version == 2
    parameter = target.client("ssm").get_parameter(Name=f"{ssm_store.location}/API_KEY")
    assert parameter["Parameter"]["Type"] == "SecureString"
    # What the function reads at its cold start (adapter/secrets.py) is what was pushed.
    ssm = target.client("ssm")
    assert load_app_secrets({"LLAMAWS_SSM_PATH": ssm_store.location}, client=ssm) == {
        "API_KEY": "k2",
        "GREETING": "hi",
        "NEW": "n",
    }
    again = push_values(target, ssm_store, {"API_KEY": "k2", "GREETING": "hi", "NEW": "n"})
    assert not again.changed_anything and again.summary().endswith("(unchanged)")


def test_push_writes_one_json_object_to_a_secrets_manager_secret(target: AwsTarget) -> None:
    client = target.client("secretsmanager")
    arn = client.create_secret(Name=f"llamaws-{uuid.uuid4().hex[:8]}", SecretString="{}")["ARN"]
    store = SecretStore("secretsmanager", arn)
    result = push_values(target, store, {"B": "2", "A": "1"})
    assert result.added == ("A", "B")
    assert json.loads(client.get_secret_value(SecretId=arn)["SecretString"]) == {"A": "1", "B": "2"}
    assert load_app_secrets({"LLAMAWS_SECRET_ARN": arn}, client=client) == {"A": "1", "B": "2"}
    assert push_values(target, store, {"A": "1"}).removed == ("B",)


def test_a_value_too_large_for_ssm_is_refused_before_anything_is_written(
    target: AwsTarget, ssm_store: SecretStore
) -> None:
    with pytest.raises(ConfigError, match='secrets = "secretsmanager"'):
        push_values(target, ssm_store, {"SMALL": "ok", "BIG": "x" * 5000})
    assert read_values(target, ssm_store) == {}


def test_env_file_values_are_the_files_later_first_without_empty_ones(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "a"\nversion = "0"\n[tool.llamadeploy]\nname = "a"\n'
        'env_files = [".env", ".env.prod"]\nenv = { PLAIN = "not pushed" }\n'
        '[tool.llamadeploy.workflows]\nw = "a:w"\n'
    )
    (tmp_path / ".env").write_text("A=1\nB=2\nEMPTY=\n")
    (tmp_path / ".env.prod").write_text("B=3\n")
    assert env_file_values(resolve_deployment(tmp_path)) == {"A": "1", "B": "3"}
    (tmp_path / ".env.prod").unlink()
    with pytest.raises(ConfigError, match=r"env file \.env\.prod of deployment 'a' does not exist"):
        env_file_values(resolve_deployment(tmp_path))


def test_masked_values_never_show_a_short_value_and_only_the_start_of_a_long_one() -> None:
    assert masked("hunter2") == "… (7 chars)"
    assert masked("sk-live-7c1f00d5e9ab4f0b52e1") == "sk-… (28 chars)"


def test_follow_prints_new_lines_once_as_they_arrive(target: AwsTarget) -> None:
    logs = target.client("logs")
    group = f"/llamaws/test-{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")

    def put(timestamp: int, *messages: str) -> None:
        logs.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[{"timestamp": timestamp, "message": m} for m in messages],
        )

    now = int(time.time() * 1000)
    put(now, "one", "two")
    rounds = iter([True, True, False])
    seen: list[str] = []
    for line in follow(logs, group, now - 1000, poll_seconds=0, keep_going=lambda: next(rounds)):
        seen.append(line.message)
        if line.message == "two":
            put(now, "three")  # the same millisecond as the last ones
            put(now + 5, "four")
    assert seen == ["one", "two", "three", "four"]


@pytest.fixture
def table(moto_server: MotoServer) -> Iterator[tuple[Any, str]]:
    client = boto3.client("dynamodb", endpoint_url=moto_server.endpoint, region_name="us-east-1")
    name = f"llamaws-test-{uuid.uuid4().hex[:12]}"
    create_table(client, name)
    yield client, name


def test_open_waits_are_counted_from_the_index_without_a_scan(table: tuple[Any, str]) -> None:
    client, name = table
    assert open_waits(client, name) == 0
    for n in range(3):  # open waits with a deadline, keyed as the layout says
        item = {**wait_key(f"h{n}", f"secret{n}"), **wait_due_key(1_000 + n, f"token{n}")}
        client.put_item(TableName=name, Item={k: {"S": v} for k, v in item.items()})
    client.put_item(  # a closed wait has no index keys
        TableName=name, Item={k: {"S": v} for k, v in wait_key("h9", "closed").items()}
    )
    scans: list[str] = []
    client.meta.events.register("before-call.dynamodb.Scan", lambda **_: scans.append("Scan"))
    assert open_waits(client, name) == 3
    assert count_runs(client, name).by_status == {
        "running": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert scans == []


def test_the_handler_statuses_counted_are_the_servers() -> None:
    from typing import get_args

    from llama_agents.server import PersistentHandler

    from llamaws.infra.status import HANDLER_STATUSES

    status = PersistentHandler.model_fields["status"].annotation
    assert set(HANDLER_STATUSES) == set(get_args(status))
