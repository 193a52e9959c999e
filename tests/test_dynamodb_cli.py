"""``llamaws dynamodb create-table`` against a moto server."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3

from llamaws.adapter.store.table import GSI1, TTL_ATTRIBUTE

from .engines import MotoServer
from .support import ROOT


def llamaws(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llamaws.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )


def test_create_table_builds_the_schema_once(
    moto_server: MotoServer, dynamo_table_name: str
) -> None:
    args = (
        "dynamodb",
        "create-table",
        "--endpoint",
        moto_server.endpoint,
        "--table",
        dynamo_table_name,
    )
    first, second = llamaws(*args), llamaws(*args)

    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    assert second.returncode == 0 and "already exists" in second.stdout
    client = boto3.client("dynamodb", endpoint_url=moto_server.endpoint)
    table = client.describe_table(TableName=dynamo_table_name)["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["PK", "SK"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == [GSI1]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = client.describe_time_to_live(TableName=dynamo_table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}


def test_create_table_on_an_unreachable_endpoint_exits_1_with_the_table_name() -> None:
    result = llamaws(
        "dynamodb", "create-table", "--endpoint", "http://127.0.0.1:9", "--table", "t-unreachable"
    )
    assert result.returncode == 1
    assert "cannot create table 't-unreachable'" in result.stderr
