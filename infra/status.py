"""``llamaws status``: the stack, the function, the last deploy, and the runs in the table.

Runs are counted through the table's handler index (``GSI1``, one ``Query`` per
status with ``Select=COUNT``; running handlers also read ``idle_since`` to tell the
ones waiting for input), open waits through the same index: no ``Scan``, whatever
the table's size. Parts that cannot be
read (no permission, a missing function) are reported, not fatal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from llamaws.adapter.store.table import GSI1, GSI1PK, WAITS_DUE

from .deploy_record import DeployRecord, read_record
from .stacks import StackState, describe_stack
from .target import AwsTarget

__all__ = [
    "HANDLER_STATUSES",
    "FunctionInfo",
    "RunCounts",
    "Status",
    "collect_status",
    "count_runs",
    "open_waits",
]

HANDLER_STATUSES = ("running", "completed", "failed", "cancelled")
"""The workflow server's handler statuses (a test compares them with upstream's)."""


@dataclass(frozen=True)
class FunctionInfo:
    """The deployed function's configuration."""

    name: str
    runtime: str
    architecture: str
    memory_mb: int
    timeout_seconds: int
    code_bytes: int
    code_sha256: str
    last_modified: str
    state: str
    reserved_concurrency: int | None = None


@dataclass(frozen=True)
class RunCounts:
    """Handlers by status; ``waiting``: running ones idle, waiting for input."""

    by_status: dict[str, int]
    waiting: int

    def summary(self) -> str:
        parts = []
        for status in HANDLER_STATUSES:
            count = self.by_status.get(status, 0)
            extra = f" ({self.waiting} waiting for input)" if status == "running" else ""
            parts.append(f"{status} {count}{extra}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Status:
    """Everything ``llamaws status`` shows."""

    stack_name: str
    where: str
    stack: StackState | None
    record: DeployRecord | None = None
    function: FunctionInfo | None = None
    runs: RunCounts | None = None
    open_waits: int | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        stack = None
        if self.stack is not None:
            stack = {
                "name": self.stack.name,
                "status": self.stack.status,
                "reason": self.stack.reason,
                "created": _iso(self.stack.created),
                "updated": _iso(self.stack.updated),
                "outputs": self.stack.outputs,
            }
        return {
            "stack_name": self.stack_name,
            "where": self.where,
            "deployed": self.stack is not None,
            "stack": stack,
            "last_deploy": self.record.to_json() if self.record is not None else None,
            "function": asdict(self.function) if self.function is not None else None,
            "runs": asdict(self.runs) if self.runs is not None else None,
            "open_waits": self.open_waits,
            "problems": list(self.problems),
        }


def collect_status(target: AwsTarget, stack_name: str) -> Status:
    """Read the stack, then (when it is there) the record, the function and the table."""
    where = target.where(target.identity())
    stack = describe_stack(target.client("cloudformation"), stack_name)
    if stack is None:
        return Status(stack_name, where, None)
    problems: list[str] = []
    record = _guarded(problems, "the last deploy's record", lambda: read_record(target, stack_name))
    function = None
    if stack.outputs.get("FunctionName"):
        name = stack.outputs["FunctionName"]
        function = _guarded(problems, f"function {name}", lambda: _function(target, name))
    runs = waits = None
    table = stack.outputs.get("TableName")
    if table:
        dynamodb = target.client("dynamodb")
        runs = _guarded(problems, f"table {table}", lambda: count_runs(dynamodb, table))
        waits = _guarded(problems, f"waits in {table}", lambda: open_waits(dynamodb, table))
    return Status(stack_name, where, stack, record, function, runs, waits, tuple(problems))


def count_runs(dynamodb: Any, table: str) -> RunCounts:
    """Handlers per status from ``GSI1`` (``GSI1PK = ST#<status>``), without a Scan."""
    counts = {status: _count(dynamodb, table, f"ST#{status}") for status in HANDLER_STATUSES}
    waiting = 0
    paginator = dynamodb.get_paginator("query")
    for page in paginator.paginate(
        TableName=table,
        IndexName=GSI1,
        KeyConditionExpression=f"{GSI1PK} = :p",
        ExpressionAttributeValues={":p": {"S": "ST#running"}},
        ProjectionExpression="idle_since",
    ):
        waiting += sum(1 for item in page.get("Items", []) if "S" in item.get("idle_since", {}))
    return RunCounts(counts, waiting)


def open_waits(dynamodb: Any, table: str) -> int:
    """Open wait tokens that have a deadline: the ``WAITS_DUE`` partition of ``GSI1``
    (a token without a deadline is not indexed; its run counts as waiting for input)."""
    return _count(dynamodb, table, WAITS_DUE)


def _count(dynamodb: Any, table: str, partition: str) -> int:
    total = 0
    for page in dynamodb.get_paginator("query").paginate(
        TableName=table,
        IndexName=GSI1,
        KeyConditionExpression=f"{GSI1PK} = :p",
        ExpressionAttributeValues={":p": {"S": partition}},
        Select="COUNT",
    ):
        total += int(page.get("Count", 0))
    return total


def _function(target: AwsTarget, name: str) -> FunctionInfo:
    client = target.client("lambda")
    config = client.get_function_configuration(FunctionName=name)
    reserved = None
    try:
        reserved = client.get_function_concurrency(FunctionName=name).get(
            "ReservedConcurrentExecutions"
        )
    except Exception:  # optional detail (permission, or an engine without it)
        reserved = None
    return FunctionInfo(
        name=name,
        runtime=str(config.get("Runtime", "?")),
        architecture=",".join(config.get("Architectures", []) or ["x86_64"]),
        memory_mb=int(config.get("MemorySize", 0)),
        timeout_seconds=int(config.get("Timeout", 0)),
        code_bytes=int(config.get("CodeSize", 0)),
        code_sha256=str(config.get("CodeSha256", "")),
        last_modified=str(config.get("LastModified", "")),
        state=str(config.get("State", "?")),
        reserved_concurrency=int(reserved) if reserved is not None else None,
    )


def _guarded(problems: list[str], what: str, read: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return read()
    except (BotoCoreError, ClientError) as exc:
        problems.append(f"cannot read {what}: {exc}")
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
