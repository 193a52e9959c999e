"""Open the workflow store the emulator persists runs in."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from llamaws.adapter.errors import LlamawsError

if TYPE_CHECKING:  # the server is imported when a store is opened, not before
    from llama_agents.server import AbstractWorkflowStore

__all__ = ["DynamoOptions", "Persistence", "open_store"]

Persistence = Literal["memory", "local", "dynamodb"]

DEFAULT_DB_NAME = "workflows.db"
ENDPOINT_ENV = "AWS_ENDPOINT_URL_DYNAMODB"


@dataclass(frozen=True)
class DynamoOptions:
    """``--persistence dynamodb``: where the table (and the spill bucket) are."""

    endpoint: str | None = None
    """A DynamoDB-compatible endpoint (default: ``$AWS_ENDPOINT_URL_DYNAMODB``, else AWS)."""
    table: str | None = None
    """Table name (default ``llamaws-<deployment name>``)."""
    s3_bucket: str | None = None
    """Bucket for items over 400 KB (optional)."""


def open_store(
    persistence: Persistence,
    config_dir: Path,
    local_path: Path | None = None,
    *,
    dynamodb: DynamoOptions | None = None,
    deployment_name: str = "default",
) -> AbstractWorkflowStore:
    """``memory``: lost on exit. ``local``: SQLite, ``workflows.db`` next to the config.

    ``dynamodb``: the DynamoDB store. With an endpoint (a local engine) the table and
    the spill bucket are created when missing; against AWS they must exist (``llamaws
    dynamodb create-table`` or the deployment stack).
    """
    from llama_agents.server import MemoryWorkflowStore

    if persistence == "memory":
        return MemoryWorkflowStore()
    if persistence == "dynamodb":
        return _open_dynamodb(dynamodb or DynamoOptions(), deployment_name)
    db_path = local_path if local_path is not None else config_dir / DEFAULT_DB_NAME
    if db_path.is_dir():
        db_path = db_path / DEFAULT_DB_NAME
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # The server reads the event log from the store; poll it often locally.
    from llamaws.adapter.sqlite_store import PurgingSqliteStore

    return PurgingSqliteStore(str(db_path), poll_interval=0.2)


def _open_dynamodb(options: DynamoOptions, deployment_name: str) -> AbstractWorkflowStore:
    from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore, StoreError

    endpoint = options.endpoint or os.environ.get(ENDPOINT_ENV) or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    settings = DynamoSettings(
        table_name=options.table or f"llamaws-{deployment_name}",
        endpoint_url=endpoint,
        region_name=region or ("us-east-1" if endpoint else None),
        s3_bucket=options.s3_bucket,
        poll_interval=0.2 if endpoint else 1.0,
    )
    try:
        store = DynamoWorkflowStore(settings)
        if endpoint:
            store.create_resources()
        else:
            store.table.client.describe_table(TableName=settings.table_name)
    except StoreError:
        raise
    except Exception as exc:  # botocore: no credentials / region, unreachable, no table
        raise LlamawsError(
            f"cannot open DynamoDB table '{settings.table_name}'"
            f"{f' at {endpoint}' if endpoint else ''}: {type(exc).__name__}: {exc}",
            hint=_dynamodb_hint(exc, endpoint),
        ) from exc
    return store


def _dynamodb_hint(exc: Exception, endpoint: str | None) -> str:
    """What to do about a DynamoDB store that does not open (no file is at fault)."""
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError") and endpoint:
        return (
            "A local engine accepts any credentials: set dummy ones, e.g. "
            "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing, and run serve again."
        )
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "Configure AWS credentials (e.g. AWS_PROFILE) and run serve again."
    if name == "NoRegionError":
        return "Set AWS_REGION (or AWS_DEFAULT_REGION) and run serve again."
    if endpoint:
        return f"Check that a DynamoDB engine answers at {endpoint} (--dynamodb-endpoint)."
    return (
        "Check AWS credentials and region, or create the table with "
        "`llamaws dynamodb create-table`."
    )
