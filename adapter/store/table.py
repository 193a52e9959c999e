"""The DynamoDB table of a deployment: schema, key encoding and item sizes, in one place.

One table holds every item type (see ``docs/dynamodb.md``)::

    item             PK               SK                 GSI1PK        GSI1SK
    handler          H#<handler_id>   HANDLER            ST#<status>   <workflow>#<handler_id>
    run meta         R#<run_id>       META               -             -
    event            R#<run_id>       E#<seq:010d>       -             -
    tick             R#<run_id>       T#<seq:010d>       -             -
    state            R#<run_id>       S#<namespace>      -             -
    snapshot         R#<run_id>       C#<tick_seq:010d>  -             -
    lease            H#<handler_id>   LEASE              -             -
    due mark         H#<handler_id>   DUE                RUN#DUE       <due_ms:015d>#<handler_id>
    inbox entry      H#<handler_id>   I#<ms>#<uuid>      -             -
    wait token       H#<handler_id>   W#<secret>         WAIT#DUE      <due_ms:015d>#<token>
    API key          K#<key_id>       KEY                KEYS          <created_at>#<key_id>
    session          K#<key_id>       SESSION#<id>       -             -

(a wait token carries GSI1 keys only while it is open and has a deadline)

``infra`` builds the CloudFormation table from :func:`table_definition` and
:data:`TTL_ATTRIBUTE`; ``llamaws dynamodb create-table`` and the emulator call
:func:`create_table`. Nothing here imports boto3 at module import.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "API_KEYS_GSI1PK",
    "EVENT",
    "GSI1",
    "INBOX",
    "LEASE",
    "MAX_ITEM_BYTES",
    "RUNS_DUE",
    "SNAPSHOT",
    "SPILL_THRESHOLD_BYTES",
    "STATE",
    "TICK",
    "TTL_ATTRIBUTE",
    "WAIT",
    "WAITS_DUE",
    "WRITE_BATCH_LIMIT",
    "api_key_gsi_key",
    "api_key_key",
    "create_table",
    "due_bound",
    "handler_gsi_key",
    "handler_key",
    "inbox_key",
    "item_size",
    "lease_key",
    "run_due_key",
    "run_due_mark_key",
    "run_key",
    "run_meta_key",
    "sequence_bounds",
    "sequence_key",
    "sequence_of",
    "session_key",
    "state_key",
    "table_definition",
    "wait_due_key",
    "wait_key",
]

PK = "PK"
SK = "SK"
GSI1 = "GSI1"
GSI1PK = "GSI1PK"
GSI1SK = "GSI1SK"
TTL_ATTRIBUTE = "expires_at"
"""Epoch seconds after which DynamoDB's TTL deletes the item."""

MAX_ITEM_BYTES = 409_600
"""DynamoDB's item size limit (400 KB)."""
SPILL_THRESHOLD_BYTES = 400_000
"""Items estimated above this go to S3: a margin under the limit for our estimate."""
WRITE_BATCH_LIMIT = 25
"""BatchWriteItem accepts at most 25 requests (moto accepts more: we guard it)."""
READ_BATCH_LIMIT = 100
"""BatchGetItem accepts at most 100 keys."""

EVENT = "E#"
TICK = "T#"
STATE = "S#"
SNAPSHOT = "C#"
"""A run's context as of a tick (``C#<sequence>``: it covers ticks up to that one)."""
_SEQ_DIGITS = 10


def handler_key(handler_id: str) -> dict[str, str]:
    """Primary key of a handler item."""
    return {PK: f"H#{handler_id}", SK: "HANDLER"}


def handler_gsi_key(status: str, workflow_name: str, handler_id: str) -> dict[str, str]:
    """GSI1 attributes of a handler item: listing by status, then workflow."""
    return {GSI1PK: f"ST#{status}", GSI1SK: f"{workflow_name}#{handler_id}"}


LEASE = "LEASE"
INBOX = "I#"


def lease_key(handler_id: str) -> dict[str, str]:
    """The lease of a handler's run: which Lambda container drives it (Lambda only)."""
    return {PK: f"H#{handler_id}", SK: LEASE}


RUNS_DUE = "RUN#DUE"
"""GSI1 partition of the runs handed to a driver that may not show up, by when to look."""


def run_due_mark_key(handler_id: str) -> dict[str, str]:
    """When the sweep should look at a handler's run next (Lambda only)."""
    return {PK: f"H#{handler_id}", SK: "DUE"}


def run_due_key(due_ms: int, handler_id: str) -> dict[str, str]:
    """GSI1 attributes of a due mark: the sweep queries the marks due now."""
    return {GSI1PK: RUNS_DUE, GSI1SK: _due_sort_key(due_ms, handler_id)}


def inbox_key(handler_id: str, entry_id: str) -> dict[str, str]:
    """An entry (posted event, cancel request) waiting for the run's driver."""
    return {PK: f"H#{handler_id}", SK: f"{INBOX}{entry_id}"}


WAIT = "W#"
WAITS_DUE = "WAIT#DUE"
"""GSI1 partition of the open wait tokens that have a deadline, sorted by it."""


def wait_key(handler_id: str, secret: str) -> dict[str, str]:
    """A wait token of a handler's run (see ``adapter.waits``)."""
    return {PK: f"H#{handler_id}", SK: f"{WAIT}{secret}"}


def wait_due_key(due_ms: int, token: str) -> dict[str, str]:
    """GSI1 attributes of an open token with a deadline: the sweep queries what is due."""
    return {GSI1PK: WAITS_DUE, GSI1SK: _due_sort_key(due_ms, token)}


def _due_sort_key(due_ms: int, suffix: str) -> str:
    return f"{due_ms:015d}#{suffix}"


def due_bound(now_ms: int) -> str:
    """The GSI1 sort key every due item of ``now_ms`` sorts below (see :func:`run_due_key`)."""
    return f"{now_ms + 1:015d}"


API_KEYS_GSI1PK = "KEYS"
"""GSI1 partition listing a deployment's API keys (``llamaws keys list``, no Scan)."""


def api_key_key(key_id: str) -> dict[str, str]:
    """An API key of the deployment (its secret only as a hash; see ``adapter/keys.py``)."""
    return {PK: f"K#{key_id}", SK: "KEY"}


def api_key_gsi_key(created_at: str, key_id: str) -> dict[str, str]:
    """GSI1 attributes of an API key item: listed in order of creation."""
    return {GSI1PK: API_KEYS_GSI1PK, GSI1SK: f"{created_at}#{key_id}"}


def session_key(key_id: str, session_id: str) -> dict[str, str]:
    """A browser session signed in with API key ``key_id`` (beside it: revoking the key ends it)."""
    return {PK: f"K#{key_id}", SK: f"SESSION#{session_id}"}


def run_key(run_id: str) -> str:
    """Partition key of everything that belongs to a run."""
    return f"R#{run_id}"


def run_meta_key(run_id: str) -> dict[str, str]:
    """The run's meta item: points at its handler."""
    return {PK: run_key(run_id), SK: "META"}


def sequence_key(run_id: str, kind: str, sequence: int) -> dict[str, str]:
    """Key of event / tick number ``sequence`` of a run (``kind`` is EVENT or TICK)."""
    return {PK: run_key(run_id), SK: f"{kind}{sequence:0{_SEQ_DIGITS}d}"}


def sequence_bounds(kind: str, after: int | None) -> tuple[str, str]:
    """Sort-key range of the sequence items numbered above ``after``."""
    low = 0 if after is None else max(after + 1, 0)
    return f"{kind}{low:0{_SEQ_DIGITS}d}", f"{kind}{'9' * _SEQ_DIGITS}"


def sequence_of(sort_key: str) -> int:
    """The sequence number encoded in a sort key."""
    return int(sort_key[2:])


def state_key(run_id: str, namespace: tuple[str, ...]) -> dict[str, str]:
    """Key of a run's state in ``namespace`` (``()`` is the root)."""
    return {PK: run_key(run_id), SK: f"{STATE}{'/'.join(namespace)}"}


def table_definition(table_name: str) -> dict[str, Any]:
    """``CreateTable`` arguments: keys, the handler-listing GSI, on-demand billing."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in (PK, SK, GSI1PK, GSI1SK)
        ],
        "KeySchema": [
            {"AttributeName": PK, "KeyType": "HASH"},
            {"AttributeName": SK, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": GSI1,
                "KeySchema": [
                    {"AttributeName": GSI1PK, "KeyType": "HASH"},
                    {"AttributeName": GSI1SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


def create_table(client: Any, table_name: str, *, wait: bool = True) -> bool:
    """Create the table (and enable TTL) unless it exists; True when created."""
    if _describe(client, table_name):
        return False
    try:
        client.create_table(**table_definition(table_name))
    except client.exceptions.ResourceInUseException:
        return False
    if wait:
        client.get_waiter("table_exists").wait(
            TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    return True


def _describe(client: Any, table_name: str) -> bool:
    try:
        client.describe_table(TableName=table_name)
    except client.exceptions.ResourceNotFoundException:
        return False
    return True


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of a marshalled item (attribute names plus values), in bytes.

    Numbers are counted at their upper bound so the estimate never falls short.
    """
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return min(len(inner) // 2 + 2, 21)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(min(len(n) // 2 + 2, 21) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    raise ValueError(f"unknown DynamoDB type {kind!r}")
