"""Wait tokens in the deployment's DynamoDB table (``adapter.waits``'s store).

One item per token, in its handler's partition (``H#<handler_id>`` / ``W#<secret>``):
the handler's waits are one Query, a token one GetItem. Every change is one
conditional UpdateItem on that item, so of racing completions (from any number of
Lambda containers) exactly one wins. An open token with a deadline also carries
GSI1 keys (``WAIT#DUE`` / ``<due_ms:015d>#<token>``): the sweep finds what is due
with one Query; closing a token removes them. Closed tokens expire by TTL.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..waits.stores import Guard, TokenConflict, TokenStore
from ..waits.tokens import TokenRecord, WaitStatus, parse_token
from .client import ConditionFailed, TableClient
from .table import GSI1PK, GSI1SK, PK, TTL_ATTRIBUTE, WAIT, WAITS_DUE, wait_due_key, wait_key

if TYPE_CHECKING:
    from .dynamo import DynamoSettings

__all__ = ["DynamoTokenStore"]

_CONDITIONS: dict[Guard, str] = {
    "live": "#st = :open AND (attribute_not_exists(due_ms) OR due_ms > :now)",
    "due": "#st = :open AND due_ms <= :now",
    "open": "#st = :open",
}


class DynamoTokenStore(TokenStore):
    """Tokens as items of the deployment table (see module doc and ``docs/dynamodb.md``)."""

    def __init__(self, table: TableClient, *, settings: DynamoSettings) -> None:
        self.table = table
        self._retention_s = int(settings.retention.total_seconds())
        self._max_open_s = (
            int(settings.max_run_age.total_seconds()) if settings.max_run_age else None
        )

    # -- reads ---------------------------------------------------------------------------

    async def get(self, token: str) -> TokenRecord | None:
        handler_id, secret = parse_token(token)
        item = await self.table.get(wait_key(handler_id, secret))
        return _record(item) if item is not None else None

    async def for_handler(self, handler_id: str) -> list[TokenRecord]:
        items = await self.table.query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :wait)",
            ExpressionAttributeValues=self.table.marshal(
                {":pk": wait_key(handler_id, "")[PK], ":wait": WAIT}
            ),
            ConsistentRead=True,
        )
        return sorted((_record(i) for i in items), key=lambda r: (r.created_ms, r.token))

    async def due(self, now_ms: int, limit: int = 100) -> list[TokenRecord]:
        items = await self.table.query_due(WAITS_DUE, now_ms, limit)
        return [_record(i) for i in items]

    # -- writes --------------------------------------------------------------------------

    async def create(self, record: TokenRecord) -> None:
        item = {**_attributes(record), TTL_ATTRIBUTE: self._expiry(record)}
        try:
            await self.table.put(item, payload=(), condition="attribute_not_exists(PK)")
        except ConditionFailed:
            raise TokenConflict(await self.get(record.token)) from None

    async def close(
        self,
        record: TokenRecord,
        *,
        status: WaitStatus,
        now_ms: int,
        ended_by: str,
        guard: Guard,
        error: str | None = None,
        cause: str | None = None,
    ) -> TokenRecord:
        values: dict[str, Any] = {
            ":status": status,
            ":open": "open",
            ":now": now_ms,
            ":by": ended_by,
            ":ttl": now_ms // 1000 + self._retention_s,
        }
        sets = ["#st = :status", "ended_ms = :now", "ended_by = :by", f"{TTL_ATTRIBUTE} = :ttl"]
        for name, value in (("error", error), ("cause", cause)):
            if value is not None:
                sets.append(f"#{name} = :{name}")
                values[f":{name}"] = value
        return await self._update(
            record,
            f"SET {', '.join(sets)} REMOVE {GSI1PK}, {GSI1SK}",
            _CONDITIONS[guard],
            values,
        )

    async def reopen(self, record: TokenRecord) -> None:
        opened = replace(record, status="open", ended_ms=None)
        values: dict[str, Any] = {
            ":open": "open",
            ":was": record.status,
            ":ended": record.ended_ms,
            ":ttl": self._expiry(opened),
        }
        sets = ["#st = :open", f"{TTL_ATTRIBUTE} = :ttl"]
        due = opened.due_ms
        if due is not None:
            gsi = wait_due_key(due, record.token)
            sets += [f"{GSI1PK} = :gpk", f"{GSI1SK} = :gsk"]
            values.update({":gpk": gsi[GSI1PK], ":gsk": gsi[GSI1SK]})
        with contextlib.suppress(TokenConflict):  # changed since: nothing to undo
            await self._update(
                record,
                f"SET {', '.join(sets)} REMOVE ended_ms, ended_by, #error, #cause",
                "#st = :was AND ended_ms = :ended",
                values,
            )

    async def heartbeat(self, record: TokenRecord, now_ms: int) -> TokenRecord:
        if record.heartbeat_seconds is None:
            current = await self.get(record.token)
            if current is None or not current.live(now_ms):
                raise TokenConflict(current)
            return current
        heartbeat_ms = now_ms + int(record.heartbeat_seconds * 1000)
        pushed = replace(record, heartbeat_ms=heartbeat_ms)
        due = pushed.due_ms
        assert due is not None
        gsi = wait_due_key(due, record.token)
        return await self._update(
            record,
            f"SET heartbeat_ms = :hb, due_ms = :due, {GSI1PK} = :gpk, {GSI1SK} = :gsk, "
            f"{TTL_ATTRIBUTE} = :ttl",
            _CONDITIONS["live"],
            {
                ":hb": heartbeat_ms,
                ":due": due,
                ":gpk": gsi[GSI1PK],
                ":gsk": gsi[GSI1SK],
                ":ttl": self._expiry(pushed),
                ":open": "open",
                ":now": now_ms,
            },
        )

    async def _update(
        self, record: TokenRecord, update: str, condition: str, values: dict[str, Any]
    ) -> TokenRecord:
        handler_id, secret = parse_token(record.token)
        try:
            response = await self.table.call(
                "update_item",
                TableName=self.table.table_name,
                Key=self.table.marshal(wait_key(handler_id, secret)),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=_names(update, condition),
                ExpressionAttributeValues=self.table.marshal(values),
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            raise TokenConflict(await self.get(record.token)) from None
        return _record(self.table.unmarshal(response["Attributes"]))

    def _expiry(self, record: TokenRecord) -> int | None:
        """TTL of an open token: its deadline (else the longest a run may stay open) plus
        the retention, so a token never disappears while its wait may still end."""
        due = record.due_ms
        if due is not None:
            return due // 1000 + self._retention_s
        if self._max_open_s is None:
            return None
        return record.created_ms // 1000 + self._max_open_s + self._retention_s


_PLACEHOLDER = re.compile(r"#(\w+)")


def _names(*expressions: str) -> dict[str, str]:
    """``#st`` (status) and ``#<name>`` placeholders used: DynamoDB reserves words such as
    ``status`` and ``error``, and refuses names an expression does not use."""
    used = {m for e in expressions for m in _PLACEHOLDER.findall(e)}
    return {f"#{m}": "status" if m == "st" else m for m in used}


def _attributes(record: TokenRecord) -> dict[str, Any]:
    handler_id, secret = parse_token(record.token)
    item: dict[str, Any] = {
        **wait_key(handler_id, secret),
        "token": record.token,
        "handler_id": record.handler_id,
        "run_id": record.run_id,
        "deployment": record.deployment,
        "workflow_name": record.workflow_name,
        "waiter_id": record.waiter_id,
        "kind": record.kind,
        "step": record.step,
        "expected_events": list(record.expected_events),
        "status": record.status,
        "created_ms": record.created_ms,
        "timeout_ms": record.timeout_ms,
        "heartbeat_seconds": (
            Decimal(str(record.heartbeat_seconds)) if record.heartbeat_seconds is not None else None
        ),
        "heartbeat_ms": record.heartbeat_ms,
        "due_ms": record.due_ms,
    }
    due = record.due_ms
    if due is not None and record.status == "open":
        item.update(wait_due_key(due, record.token))
    return item


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _record(item: dict[str, Any]) -> TokenRecord:
    heartbeat = item.get("heartbeat_seconds")
    return TokenRecord(
        token=str(item["token"]),
        handler_id=str(item["handler_id"]),
        run_id=str(item["run_id"]),
        deployment=str(item["deployment"]),
        workflow_name=str(item["workflow_name"]),
        waiter_id=str(item["waiter_id"]),
        kind=item["kind"],
        step=str(item["step"]),
        expected_events=tuple(str(e) for e in item.get("expected_events", [])),
        created_ms=int(item["created_ms"]),
        timeout_ms=_int(item.get("timeout_ms")),
        heartbeat_seconds=float(heartbeat) if heartbeat is not None else None,
        heartbeat_ms=_int(item.get("heartbeat_ms")),
        status=item["status"],
        ended_ms=_int(item.get("ended_ms")),
        ended_by=item.get("ended_by"),
        error=item.get("error"),
        cause=item.get("cause"),
    )
