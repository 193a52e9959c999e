"""One driver per run: the lease and the inbox of a handler, in the deployment table.

**Lease** (``H#<handler_id>`` / ``LEASE``): the container that holds it drives the
run. Taken with a conditional write (free, expired, or already ours), renewed while
driving, released (deleted, if still ours) when the driver stops. A container
that crashed or was frozen past the expiry loses it to the next driver.

**Inbox** (``H#<handler_id>`` / ``I#<ms>#<uuid>``): what a request hands a run it
does not drive (a posted event, a cancel). The driver delivers entries and deletes
them once the run has journaled them. No entry is stranded: a poster writes its
entry *then* asks for a driver; a driver releases its lease *then* looks at the
inbox, so one of the two always sees the other.

**Due mark** (``H#<handler_id>`` / ``DUE``, indexed in ``GSI1`` under ``RUN#DUE`` by
time): written whenever a run is handed to a driver that may never come (a
``continue`` invocation is queued, a run starts in an invocation that may die), due
when that driver should have taken over; removed by a driver that leaves the run
quiet (finished, or idle with an empty inbox). The sweep reads only the marks due
now, so its cost follows what needs attention, not how many runs wait.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from ..store.client import ConditionFailed, TableClient
from ..store.table import (
    INBOX,
    PK,
    RUNS_DUE,
    SK,
    TTL_ATTRIBUTE,
    inbox_key,
    lease_key,
    run_due_key,
    run_due_mark_key,
)

__all__ = ["Coordination", "InboxEntry", "Lease", "MarkingInvoker"]

_DAY = 86_400


@dataclass(frozen=True)
class Lease:
    """Who drives a handler's run, and until when (epoch milliseconds)."""

    owner: str
    until_ms: int

    def live(self, now_ms: int | None = None) -> bool:
        return self.until_ms > (now_ms if now_ms is not None else _now_ms())


@dataclass(frozen=True)
class InboxEntry:
    """A posted event (``event`` is its JSON envelope), a cancel request, or a tick
    (``event`` is its JSON: the end of a wait, see ``adapter.waits.delivery``)."""

    kind: Literal["event", "cancel", "tick"]
    event: Any = None
    step: str | None = None
    purge: bool = False
    entry_id: str = field(default_factory=lambda: f"{_now_ms():015d}#{uuid.uuid4().hex}")


class Coordination:
    """Leases and inboxes of the handlers of one table, for one container (``owner``)."""

    def __init__(self, table: TableClient, *, owner: str, lease_seconds: float = 30.0) -> None:
        self.table = table
        self.owner = owner
        self.lease_ms = int(lease_seconds * 1000)

    # -- lease ------------------------------------------------------------------------

    async def acquire(self, handler_id: str) -> bool:
        """Take the lease when it is free, expired or ours; False when another holds it."""
        now = _now_ms()
        item = {
            **lease_key(handler_id),
            "owner": self.owner,
            "until_ms": now + self.lease_ms,
            TTL_ATTRIBUTE: now // 1000 + _DAY,
        }
        try:
            await self.table.call(
                "put_item",
                TableName=self.table.table_name,
                Item=self.table.marshal(item),
                ConditionExpression="attribute_not_exists(PK) OR until_ms < :now OR #o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues=self.table.marshal({":now": now, ":me": self.owner}),
            )
        except ConditionFailed:
            return False
        return True

    async def renew(self, handler_id: str) -> bool:
        """Push the expiry on; False when the lease is no longer ours (stop driving)."""
        now = _now_ms()
        try:
            await self.table.call(
                "update_item",
                TableName=self.table.table_name,
                Key=self.table.marshal(lease_key(handler_id)),
                UpdateExpression="SET until_ms = :until",
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues=self.table.marshal(
                    {":until": now + self.lease_ms, ":me": self.owner}
                ),
            )
        except ConditionFailed:
            return False
        return True

    async def release(self, handler_id: str) -> None:
        """Give the lease up if it is still ours."""
        with contextlib.suppress(ConditionFailed):
            await self.table.call(
                "delete_item",
                TableName=self.table.table_name,
                Key=self.table.marshal(lease_key(handler_id)),
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues=self.table.marshal({":me": self.owner}),
            )

    async def lease_of(self, handler_id: str) -> Lease | None:
        item = await self.table.get(lease_key(handler_id))
        if item is None:
            return None
        return Lease(owner=str(item["owner"]), until_ms=int(item["until_ms"]))

    # -- inbox ------------------------------------------------------------------------

    async def post(self, handler_id: str, entry: InboxEntry) -> None:
        """Leave ``entry`` for the run's driver (kept 30 days at most)."""
        item = {
            **inbox_key(handler_id, entry.entry_id),
            "kind": entry.kind,
            "event": json.dumps(entry.event) if entry.event is not None else None,
            "step": entry.step,
            "purge": entry.purge,
            TTL_ATTRIBUTE: _now_ms() // 1000 + 30 * _DAY,
        }
        await self.table.put(item, payload=("event",))

    async def pending(self, handler_id: str) -> list[InboxEntry]:
        """The run's inbox, oldest first (one consistent Query)."""
        items = await self.table.query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :inbox)",
            ExpressionAttributeValues=self.table.marshal(
                {":pk": lease_key(handler_id)[PK], ":inbox": INBOX}
            ),
            ConsistentRead=True,
        )
        return [
            InboxEntry(
                kind=item["kind"],
                event=json.loads(item["event"]) if item.get("event") else None,
                step=item.get("step"),
                purge=bool(item.get("purge", False)),
                entry_id=str(item[SK])[len(INBOX) :],
            )
            for item in items
        ]

    async def done(self, handler_id: str, entries: list[InboxEntry]) -> None:
        """Remove delivered entries."""
        if entries:
            await self.table.batch_delete([inbox_key(handler_id, e.entry_id) for e in entries])

    # -- due marks ----------------------------------------------------------------------

    async def mark_due(self, handler_id: str, after_ms: int | None = None) -> None:
        """Look at the run again ``after_ms`` from now (default: one lease length)."""
        due = _now_ms() + (self.lease_ms if after_ms is None else after_ms)
        item = {
            **run_due_mark_key(handler_id),
            **run_due_key(due, handler_id),
            "handler_id": handler_id,
            "due_ms": due,
            TTL_ATTRIBUTE: due // 1000 + 30 * _DAY,
        }
        await self.table.call(
            "put_item", TableName=self.table.table_name, Item=self.table.marshal(item)
        )

    async def clear_due(self, handler_id: str) -> None:
        """The run needs no look: it is finished, or quiet with nothing in its inbox."""
        await self.table.call(
            "delete_item",
            TableName=self.table.table_name,
            Key=self.table.marshal(run_due_mark_key(handler_id)),
        )

    async def due(self, now_ms: int | None = None, limit: int = 1000) -> list[str]:
        """Handler ids whose mark is due (1 Query on ``GSI1``, earliest first)."""
        now = _now_ms() if now_ms is None else now_ms
        items = await self.table.query_due(RUNS_DUE, now, limit)
        return list(dict.fromkeys(str(item["handler_id"]) for item in items))


@dataclass
class MarkingInvoker:
    """An invoker that marks a run due before queuing its ``continue``: if that
    invocation never runs, the sweep finds the run once the mark is due."""

    invoker: Any
    coordination: Coordination

    async def invoke_async(self, payload: Any) -> None:
        body = payload.get("llamaws") if hasattr(payload, "get") else None
        if isinstance(body, dict) and body.get("kind") == "continue":
            await self.coordination.mark_due(str(body["handler_id"]))
        await self.invoker.invoke_async(payload)


def _now_ms() -> int:
    return int(time.time() * 1000)
