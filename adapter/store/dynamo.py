"""``DynamoWorkflowStore``: the workflow server's store on one DynamoDB table.

Every request-serving read is a GetItem, BatchGetItem or Query (never a Scan);
event and tick sequence numbers are allocated with a conditional put on the
sequence item itself (``attribute_not_exists``), so they are gap-free and never
duplicated even when processes race. Handler items carry a ``version``: every
write is conditional on the version this store last read (optimistic
concurrency), so two processes updating one handler never lose an update:
``update_handler_status`` re-reads and retries, ``update`` of a handler changed
by another writer since it was read raises :class:`HandlerConflict` (409). The
access pattern of every method is in ``docs/dynamodb.md``; the key layout is in
:mod:`adapter.store.table`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from llama_agents.client.protocol.serializable_events import (  # type: ignore[import-untyped]
    EventEnvelopeWithMetadata,
)
from llama_agents.server import AbstractWorkflowStore, HandlerQuery, PersistentHandler
from workflows.context import JsonSerializer
from workflows.context.serializers import BaseSerializer
from workflows.events import StopEvent

from ..handler_pages import STATUS_ORDER, HandlerFilter, Position, order_key
from ..upstream import StoredEvent, StoredTick, decode_persistent_handler, is_terminal_status
from .client import ConditionFailed, StoreError, TableClient
from .state import DynamoStateStore
from .table import (
    EVENT,
    GSI1,
    PK,
    SK,
    SNAPSHOT,
    TICK,
    TTL_ATTRIBUTE,
    create_table,
    handler_gsi_key,
    handler_key,
    run_key,
    run_meta_key,
    sequence_bounds,
    sequence_key,
    sequence_of,
)

__all__ = ["DynamoSettings", "DynamoWorkflowStore", "HandlerConflict"]

logger = logging.getLogger(__name__)

ALL_STATUSES = ("running", "completed", "failed", "cancelled")
_TICK_PAGE = 100
_MAX_SEQUENCE_ATTEMPTS = 64
_CACHED_RUNS = 10_000
_CACHED_VERSIONS = 10_000
_MAX_WRITE_ATTEMPTS = 16
VERSION = "version"
_KEEP: Any = object()
Status = Literal["running", "completed", "failed", "cancelled"]
MAX_SORT_KEY_BYTES = 1024


class HandlerConflict(ConditionFailed):
    """A handler write lost to another writer (it exists, or changed since it was read)."""


@dataclass(frozen=True)
class DynamoSettings:
    """Where the table is and how long finished runs are kept."""

    table_name: str
    endpoint_url: str | None = None
    region_name: str | None = None
    s3_bucket: str | None = None
    """Bucket for items over DynamoDB's 400 KB limit (none: such writes fail)."""
    s3_endpoint_url: str | None = None
    retention: timedelta = timedelta(days=7)
    """A finished handler expires (TTL) this long after it finished."""
    max_run_age: timedelta | None = timedelta(days=30)
    """Events, ticks and state expire this long plus ``retention`` after being written
    (None: never). It must exceed the longest a run stays open (HITL waits included)."""
    poll_interval: float = 1.0
    """Longest pause between polls of a reader in another process (backoff cap)."""


class DynamoWorkflowStore(AbstractWorkflowStore):
    """Handlers, ticks, events and per-run state in one DynamoDB table."""

    def __init__(self, settings: DynamoSettings, *, table: TableClient | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.poll_interval = settings.poll_interval
        self.table = table or TableClient(
            settings.table_name,
            endpoint_url=settings.endpoint_url,
            region_name=settings.region_name,
            s3_bucket=settings.s3_bucket,
            s3_endpoint_url=settings.s3_endpoint_url,
        )
        self._next_sequence: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._sequence_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._versions: OrderedDict[str, int] = OrderedDict()
        """Handler id -> the version of its item this store last read or wrote."""

    # -- setup ----------------------------------------------------------------------

    def create_resources(self) -> bool:
        """Create the table (and spill bucket) when missing; True when the table was new."""
        created = create_table(self.table.client, self.settings.table_name)
        if self.table.spill is not None:
            self.table.spill.ensure_bucket()
        return created

    # -- handlers -------------------------------------------------------------------

    async def update(self, handler: PersistentHandler) -> None:
        """Write ``handler``: a new item, or the next version of the one this store read.

        Raises :class:`HandlerConflict` when another writer created or changed the
        item since (this store never overwrites a version it has not seen).
        """
        known = self._versions.get(handler.handler_id)
        try:
            await self._put_handler(handler, known)
        except ConditionFailed as exc:
            self._versions.pop(handler.handler_id, None)
            what = "exists" if known is None else f"changed since version {known}"
            raise HandlerConflict(
                f"handler {handler.handler_id} {what}: another writer updated it",
                hint="Read it again and retry.",
            ) from exc

    async def update_handler_status(
        self,
        run_id: str,
        *,
        status: Status | None = None,
        result: StopEvent | None = None,
        error: str | None = None,
        idle_since: datetime | object | None = _KEEP,
    ) -> None:
        """Read the run's handler, change the given fields, write it if unchanged since.

        A write that loses to another writer re-reads and tries again: both updates
        land, in some order (the base class's read-then-overwrite loses one).
        """
        for attempt in range(_MAX_WRITE_ATTEMPTS):
            items = await self._matching_items(HandlerQuery(run_id_in=[run_id]))
            if not items:
                logger.warning("update_handler_status: run %s not found, skipping", run_id)
                return
            handler = self._decode_handler(items[0])
            now = datetime.now(UTC)
            handler.updated_at = now
            if status is not None:
                handler.status = status
                if is_terminal_status(status):
                    handler.completed_at = now
            if result is not None:
                handler.result = result
            if error is not None:
                handler.error = error
            if idle_since is not _KEEP:
                assert idle_since is None or isinstance(idle_since, datetime)
                handler.idle_since = idle_since
            try:
                await self._put_handler(handler, _version(items[0]))
                return
            except ConditionFailed:
                await asyncio.sleep(min(0.01 * 2**attempt, 0.5) * random.uniform(0.5, 1.0))
        raise StoreError(
            f"DynamoDB PutItem on table '{self.table.table_name}': the handler of run "
            f"{run_id} kept changing; gave up after {_MAX_WRITE_ATTEMPTS} attempts"
        )

    async def _put_handler(self, handler: PersistentHandler, expected: int | None) -> None:
        """Put ``handler`` as version ``expected + 1``; only over version ``expected``
        (``None``: only where no item is)."""
        version = (expected or 0) + 1
        item: dict[str, Any] = {
            **handler_key(handler.handler_id),
            **handler_gsi_key(handler.status, handler.workflow_name, handler.handler_id),
            "handler_id": handler.handler_id,
            "workflow_name": handler.workflow_name,
            "status": handler.status,
            "run_id": handler.run_id,
            "error": handler.error,
            "result": (
                JsonSerializer().serialize(handler.result) if handler.result is not None else None
            ),
            "started_at": _iso(handler.started_at),
            "updated_at": _iso(handler.updated_at),
            "completed_at": _iso(handler.completed_at),
            "idle_since": _iso(handler.idle_since),
            VERSION: version,
        }
        if is_terminal_status(handler.status):
            finished = handler.completed_at or datetime.now(UTC)
            item[TTL_ATTRIBUTE] = int((finished + self.settings.retention).timestamp())
        values: dict[str, Any] = {}
        names: dict[str, str] = {}
        if expected is None:
            condition = "attribute_not_exists(PK)"
        elif expected == 0:  # an item written before versions existed
            condition, names = "attribute_exists(PK) AND attribute_not_exists(#v)", {"#v": VERSION}
        else:
            condition, names = "#v = :expected", {"#v": VERSION}
            values = {":expected": expected}
        old = await self.table.put(
            item,
            payload=("result", "error"),
            condition=condition,
            condition_values=values,
            condition_names=names,
            return_old=True,
        )
        self._saw(handler.handler_id, version)
        if handler.run_id is not None and (old is None or old.get("run_id") != handler.run_id):
            await self._point_run_at(handler.run_id, handler.handler_id)

    def _saw(self, handler_id: str, version: int) -> None:
        # Never backwards: a GSI listing (eventually consistent) may return an older item.
        self._versions[handler_id] = max(version, self._versions.get(handler_id, 0))
        self._versions.move_to_end(handler_id)
        while len(self._versions) > _CACHED_VERSIONS:
            self._versions.popitem(last=False)

    async def _point_run_at(self, run_id: str, handler_id: str) -> None:
        """Write the run's meta item: run id -> handler id (once per run)."""
        values: dict[str, Any] = {":h": handler_id}
        update = "SET handler_id = :h"
        expiry = self._journal_expiry()
        if expiry is not None:
            update += f", {TTL_ATTRIBUTE} = :ttl"
            values[":ttl"] = expiry
        await self.table.call(
            "update_item",
            TableName=self.table.table_name,
            Key=self.table.marshal(run_meta_key(run_id)),
            UpdateExpression=update,
            ExpressionAttributeValues=self.table.marshal(values),
        )

    async def query(self, query: HandlerQuery) -> list[PersistentHandler]:
        items = await self._matching_items(query)
        return [self._decode_handler(item) for item in items]

    async def delete(self, query: HandlerQuery) -> int:
        """Delete matching handlers and everything their runs stored."""
        if all(
            value is None
            for value in (
                query.handler_id_in,
                query.run_id_in,
                query.workflow_name_in,
                query.status_in,
                query.is_idle,
            )
        ):
            return 0
        items = await self._matching_items(query)
        for item in items:
            self._versions.pop(item["handler_id"], None)
            # The handler's partition (the handler, its lease, inbox and wait tokens),
            # then its run's (meta, events, ticks, state, snapshots), in batches of 25;
            # the handler item goes last, so a purge cut short can be run again.
            keys = [
                key
                for key in await self._partition_keys(handler_key(item["handler_id"])[PK])
                if key != handler_key(item["handler_id"])
            ]
            if item.get("run_id"):
                keys.extend(await self._run_item_keys(item["run_id"]))
            await self.table.batch_delete(keys)
            await self.table.batch_delete([handler_key(item["handler_id"])])
        return len(items)

    async def _partition_keys(self, partition: str) -> list[dict[str, str]]:
        items = await self.table.query(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=self.table.marshal({":pk": partition}),
            ProjectionExpression="PK, SK",
            ConsistentRead=True,
        )
        return [{PK: item[PK], SK: item[SK]} for item in items]

    async def _matching_items(self, query: HandlerQuery) -> list[dict[str, Any]]:
        filters = (query.handler_id_in, query.run_id_in, query.workflow_name_in, query.status_in)
        if any(f is not None and len(f) == 0 for f in filters):
            return []
        if query.handler_id_in is not None:
            candidates = await self.table.batch_get([handler_key(h) for h in query.handler_id_in])
        elif query.run_id_in is not None:
            metas = await self.table.batch_get([run_meta_key(r) for r in query.run_id_in])
            ids = [str(m["handler_id"]) for m in metas if m.get("handler_id")]
            candidates = await self.table.batch_get([handler_key(h) for h in ids])
        else:
            candidates = await self._list_by_status(query.status_in, query.workflow_name_in)
        matched = [item for item in candidates if _matches(item, query)]
        return sorted(matched, key=lambda item: (item.get("started_at") or "", item["handler_id"]))

    async def _list_by_status(
        self, statuses: Sequence[str] | None, workflow_names: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        """Query GSI1: one Query per (status, workflow) pair asked for."""
        prefixes: list[str | None] = (
            # A sort key holds at most 1,024 bytes: a longer prefix matches nothing (and
            # DynamoDB would refuse the Query).
            [
                f"{name}#"
                for name in dict.fromkeys(workflow_names)
                if len(f"{name}#".encode()) <= MAX_SORT_KEY_BYTES
            ]
            if workflow_names is not None
            else [None]
        )
        found: list[dict[str, Any]] = []
        for status in dict.fromkeys(statuses if statuses is not None else ALL_STATUSES):
            for prefix in prefixes:
                values: dict[str, Any] = {":pk": f"ST#{status}"}
                condition = "GSI1PK = :pk"
                if prefix is not None:
                    condition += " AND begins_with(GSI1SK, :prefix)"
                    values[":prefix"] = prefix
                found.extend(
                    await self.table.query(
                        IndexName=GSI1,
                        KeyConditionExpression=condition,
                        ExpressionAttributeValues=self.table.marshal(values),
                    )
                )
        return found

    async def handler_page(
        self, filters: HandlerFilter, after: Position | None, limit: int
    ) -> list[PersistentHandler]:
        """One page of the listing (see :mod:`adapter.handler_pages`): Queries on
        ``GSI1`` from the position after ``after``, one (status, workflow) pair at a
        time, reading at most ``limit`` items in all."""
        statuses = filters.statuses if filters.statuses is not None else STATUS_ORDER
        names: Sequence[str | None] = (
            sorted(
                (n for n in filters.workflow_names if len(f"{n}#".encode()) <= MAX_SORT_KEY_BYTES),
                key=lambda n: f"{n}#",
            )
            if filters.workflow_names is not None
            else [None]
        )
        pairs = [(status, name) for status in statuses for name in names]
        start = 0
        start_key: dict[str, Any] | None = None
        if after is not None:
            last = order_key(after.status, after.workflow_name, after.handler_id)
            start = next(
                (
                    i
                    for i, (status, name) in enumerate(pairs)
                    if (
                        order_key(status, "", "")[0],
                        "\U0010ffff" if name is None else f"{name}#\U0010ffff",
                    )
                    > last
                ),
                len(pairs),
            )
            if (
                start < len(pairs)
                and pairs[start][0] == after.status
                and pairs[start][1]
                in (
                    None,
                    after.workflow_name,
                )
            ):
                start_key = self.table.marshal(
                    {
                        **handler_key(after.handler_id),
                        **handler_gsi_key(after.status, after.workflow_name, after.handler_id),
                    }
                )
        found: list[PersistentHandler] = []
        for status, name in pairs[start:]:
            values: dict[str, Any] = {":pk": f"ST#{status}"}
            condition = "GSI1PK = :pk"
            if name is not None:
                condition += " AND begins_with(GSI1SK, :prefix)"
                values[":prefix"] = f"{name}#"
            kwargs: dict[str, Any] = {}
            if start_key is not None:
                kwargs["ExclusiveStartKey"] = start_key
                start_key = None
            items = await self._query_from(
                IndexName=GSI1,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=self.table.marshal(values),
                Limit=limit - len(found),
                **kwargs,
            )
            found.extend(
                self._decode_handler(item)
                for item in items
                if name is None or item.get("workflow_name") == name
            )
            if len(found) >= limit:
                break
        return found

    async def _query_from(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Up to ``Limit`` items of a Query that may start at ``ExclusiveStartKey``."""
        limit: int = kwargs.pop("Limit")
        start_key = kwargs.pop("ExclusiveStartKey", None)
        items: list[dict[str, Any]] = []
        while len(items) < limit:
            request = {"TableName": self.table.table_name, "Limit": limit - len(items), **kwargs}
            if start_key is not None:
                request["ExclusiveStartKey"] = start_key
            response = await self.table.call("query", **request)
            for raw in response.get("Items", []):
                items.append(await self.table.load(raw))
            start_key = response.get("LastEvaluatedKey")
            if start_key is None:
                break
        return items

    def _decode_handler(self, item: dict[str, Any]) -> PersistentHandler:
        self._saw(item["handler_id"], _version(item))
        return decode_persistent_handler(
            {
                "handler_id": item["handler_id"],
                "workflow_name": item["workflow_name"],
                "status": item["status"],
                "run_id": item.get("run_id"),
                "error": item.get("error"),
                "result": json.loads(item["result"]) if item.get("result") else None,
                "started_at": _datetime(item.get("started_at")),
                "updated_at": _datetime(item.get("updated_at")),
                "completed_at": _datetime(item.get("completed_at")),
                "idle_since": _datetime(item.get("idle_since")),
            },
            self.result_decoder,
        )

    # -- events -------------------------------------------------------------------

    async def append_event(self, run_id: str, event: EventEnvelopeWithMetadata) -> None:
        await self._append(run_id, EVENT, event.model_dump_json())
        for waiter in self._waiters.get(run_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def query_events(
        self, run_id: str, after_sequence: int | None = None, limit: int | None = None
    ) -> list[StoredEvent]:
        if limit is not None and limit <= 0:
            return []
        items = await self._sequence_items(run_id, EVENT, after_sequence, limit)
        return [
            StoredEvent(
                run_id=run_id,
                sequence=sequence_of(item[SK]),
                timestamp=datetime.fromisoformat(item["ts"]),
                event=EventEnvelopeWithMetadata.model_validate_json(item["data"]),
            )
            for item in items
        ]

    async def subscribe_events(
        self, run_id: str, after_sequence: int = -1
    ) -> AsyncIterator[StoredEvent]:
        """Yield events as they are appended, until a terminal one.

        Appends made through this store wake the reader at once; appends made by
        other processes are found by polling, backing off up to ``poll_interval``.
        """
        cursor = after_sequence
        delay = min(0.05, self.poll_interval)
        loop = asyncio.get_running_loop()
        while True:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(run_id, set()).add(waiter)
            try:
                batch = await self.query_events(run_id, after_sequence=cursor)
                if not batch:
                    try:
                        await asyncio.wait_for(asyncio.shield(waiter), timeout=delay)
                        delay = min(0.05, self.poll_interval)
                    except TimeoutError:
                        delay = min(delay * 2, self.poll_interval)
                    continue
            finally:
                waiters = self._waiters.get(run_id)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[run_id]
            delay = min(0.05, self.poll_interval)
            for event in batch:
                yield event
                cursor = event.sequence
                if self._is_terminal_event(event):
                    return

    # -- ticks --------------------------------------------------------------------

    async def append_tick(self, run_id: str, tick_data: dict[str, Any]) -> None:
        await self._append(run_id, TICK, json.dumps(tick_data))

    async def get_ticks(self, run_id: str) -> list[StoredTick]:
        return [_tick(run_id, item) for item in await self._sequence_items(run_id, TICK)]

    async def stream_ticks(self, run_id: str) -> AsyncIterator[StoredTick]:
        async for tick in self.stream_ticks_after(run_id, None):
            yield tick

    # -- snapshots (see adapter/snapshots.py) -------------------------------------------

    async def latest_snapshot(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        """The run's newest snapshot: (the last tick it covers, its context), or None."""
        items = await self.table.query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :kind)",
            ExpressionAttributeValues=self.table.marshal(
                {":pk": run_key(run_id), ":kind": SNAPSHOT}
            ),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        if not items:
            return None
        return sequence_of(items[0][SK]), json.loads(items[0]["data"])

    async def save_snapshot(self, run_id: str, sequence: int, context: dict[str, Any]) -> None:
        """Keep ``context`` as the run's state after tick ``sequence`` (older ones are
        kept: one item per snapshot, removed by purge and TTL like the ticks)."""
        item = {
            **sequence_key(run_id, SNAPSHOT, sequence),
            "data": json.dumps(context),
            "ts": datetime.now(UTC).isoformat(),
            TTL_ATTRIBUTE: self._journal_expiry(),
        }
        await self.table.put(item, payload=("data",))

    async def stream_ticks_after(self, run_id: str, after: int | None) -> AsyncIterator[StoredTick]:
        """The run's ticks numbered above ``after``, in pages of 100."""
        cursor = after
        while True:
            items = await self._sequence_items(run_id, TICK, cursor, _TICK_PAGE)
            for item in items:
                tick = _tick(run_id, item)
                cursor = tick.sequence
                yield tick
            if len(items) < _TICK_PAGE:
                return

    # -- state ----------------------------------------------------------------------

    def _build_state_store(
        self,
        run_id: str,
        namespace: tuple[str, ...],
        state_type: type[Any] | None,
        serializer: BaseSerializer | None,
    ) -> DynamoStateStore[Any]:
        return DynamoStateStore(
            self.table,
            run_id,
            namespace,
            state_type=state_type,
            serializer=serializer,
            expires_at=self._journal_expiry,
        )

    # -- sequences ----------------------------------------------------------------

    async def _append(self, run_id: str, kind: str, data: str) -> int:
        """Write the next ``kind`` item of the run; returns its sequence number.

        The put is conditional on the sequence item not existing: a writer that
        loses a race re-reads the last number and tries the next one.
        """
        slot = (kind, run_id)
        lock = self._sequence_locks.setdefault(slot, asyncio.Lock())
        async with lock:
            for attempt in range(_MAX_SEQUENCE_ATTEMPTS):
                sequence = self._next_sequence.get(slot)
                if sequence is None:
                    sequence = await self._last_sequence(run_id, kind) + 1
                item = {
                    **sequence_key(run_id, kind, sequence),
                    "data": data,
                    "ts": datetime.now(UTC).isoformat(),
                    TTL_ATTRIBUTE: self._journal_expiry(),
                }
                try:
                    await self.table.put(
                        item, payload=("data",), condition="attribute_not_exists(PK)"
                    )
                except ConditionFailed:
                    self._next_sequence.pop(slot, None)
                    await asyncio.sleep(min(0.01 * 2**attempt, 0.5) * random.uniform(0.5, 1.0))
                    continue
                self._remember(slot, sequence + 1)
                return sequence
        raise StoreError(
            f"DynamoDB PutItem on table '{self.table.table_name}': no free sequence number "
            f"for {kind!r} of run {run_id} after {_MAX_SEQUENCE_ATTEMPTS} attempts"
        )

    def _remember(self, slot: tuple[str, str], next_sequence: int) -> None:
        self._next_sequence[slot] = next_sequence
        self._next_sequence.move_to_end(slot)
        while len(self._next_sequence) > _CACHED_RUNS:
            old, _ = self._next_sequence.popitem(last=False)
            lock = self._sequence_locks.get(old)
            if lock is not None and not lock.locked():
                del self._sequence_locks[old]

    async def _last_sequence(self, run_id: str, kind: str) -> int:
        response = await self.table.call(
            "query",
            TableName=self.table.table_name,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :kind)",
            ExpressionAttributeValues=self.table.marshal({":pk": run_key(run_id), ":kind": kind}),
            ProjectionExpression="SK",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        return sequence_of(items[0][SK]["S"]) if items else -1

    async def _sequence_items(
        self, run_id: str, kind: str, after: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        low, high = sequence_bounds(kind, after)
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :low AND :high",
            "ExpressionAttributeValues": self.table.marshal(
                {":pk": run_key(run_id), ":low": low, ":high": high}
            ),
            "ConsistentRead": True,
        }
        if limit is not None:
            kwargs["Limit"] = limit
        return await self.table.query(**kwargs)

    async def _run_item_keys(self, run_id: str) -> list[dict[str, str]]:
        keys = await self._partition_keys(run_key(run_id))
        self._evict_run_state_stores(run_id)
        for kind in (EVENT, TICK):
            self._next_sequence.pop((kind, run_id), None)
        return keys

    def _journal_expiry(self) -> int | None:
        if self.settings.max_run_age is None:
            return None
        horizon = self.settings.max_run_age + self.settings.retention
        return int(time.time() + horizon.total_seconds())


def _matches(item: dict[str, Any], query: HandlerQuery) -> bool:
    checks: list[tuple[list[Any] | None, Any]] = [
        (query.handler_id_in, item.get("handler_id")),
        (query.run_id_in, item.get("run_id")),
        (query.workflow_name_in, item.get("workflow_name")),
        (query.status_in, item.get("status")),
    ]
    if any(allowed is not None and value not in allowed for allowed, value in checks):
        return False
    return query.is_idle is None or query.is_idle == (item.get("idle_since") is not None)


def _version(item: dict[str, Any]) -> int:
    """The item's version; 0 for an item written before versions existed."""
    return int(item.get(VERSION) or 0)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _tick(run_id: str, item: dict[str, Any]) -> StoredTick:
    return StoredTick(
        run_id=run_id,
        sequence=sequence_of(item[SK]),
        timestamp=datetime.fromisoformat(item["ts"]),
        tick_data=json.loads(item["data"]),
    )
