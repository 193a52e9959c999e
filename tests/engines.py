"""Real local engines for tests: a moto server (DynamoDB + S3) over HTTP.

The server runs as its own process (``moto_server``) on a free port; the code
under test reaches it through ``endpoint_url`` exactly as it reaches AWS.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

__all__ = [
    "AWS_TEST_ENV",
    "MotoServer",
    "aws_env",
    "dynamo_table_name",
    "dynamodb_serve_args",
    "emulator_store_args",
    "moto_server",
]

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""Dummy credentials: moto accepts any, and nothing may reach a real account."""


@dataclass
class MotoServer:
    """A running ``moto_server``: its endpoint serves DynamoDB and S3."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def reset(self) -> None:
        """Forget every table and bucket."""
        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=5)


@pytest.fixture(scope="session")
def aws_env() -> Iterator[dict[str, str]]:
    """Dummy AWS credentials and region in ``os.environ`` for the session."""
    saved = {name: os.environ.get(name) for name in AWS_TEST_ENV}
    os.environ.update(AWS_TEST_ENV)
    yield dict(AWS_TEST_ENV)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def moto_server(aws_env: dict[str, str]) -> Iterator[MotoServer]:
    """One moto server for the session (tables are per test, by unique name)."""
    from llamaws.local.engine import start_local_engine

    engine = start_local_engine()
    try:
        yield MotoServer(engine.endpoint, engine.process)
    finally:
        engine.stop()


@pytest.fixture
def dynamo_table_name() -> str:
    """A table name no other test uses (tables live as long as the moto server)."""
    return f"llamaws-test-{uuid.uuid4().hex[:12]}"


def dynamodb_serve_args(moto: MotoServer, table: str) -> list[str]:
    """``llamaws serve`` flags that keep runs in ``table`` on the moto server."""
    return [
        "--persistence", "dynamodb",
        "--dynamodb-endpoint", moto.endpoint,
        "--dynamodb-table", table,
        "--s3-bucket", "llamaws-spill",
    ]  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "dynamodb"])
def emulator_store_args(request: pytest.FixtureRequest) -> list[str]:
    """Extra ``llamaws serve`` args selecting the store: a module using it runs twice.

    ``sqlite`` is the default store (no args); ``dynamodb`` starts (once per
    session) the moto server and gives the emulator a fresh table on it.
    """
    if request.param == "sqlite":
        return []
    moto: MotoServer = request.getfixturevalue("moto_server")
    return dynamodb_serve_args(moto, f"llamaws-test-{uuid.uuid4().hex[:12]}")
