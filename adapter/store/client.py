"""Async access to one DynamoDB table: marshalling, spill, size and batch guards, errors.

boto3 is synchronous: every request runs in a worker thread (``asyncio.to_thread``)
so the event loop keeps serving. Throttling and transient errors are retried by
botocore's ``standard`` retry mode with backoff; what still fails surfaces as a
:class:`StoreError` naming the table and the operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from ..errors import LlamawsError
from .spill import SPILL_ATTRIBUTE, SpillStore
from .table import (
    GSI1,
    PK,
    SK,
    SPILL_THRESHOLD_BYTES,
    WRITE_BATCH_LIMIT,
    due_bound,
    item_size,
)

__all__ = ["ConditionFailed", "StoreError", "TableClient"]


class StoreError(LlamawsError):
    """A DynamoDB (or S3 spill) request failed after retries."""

    status_code = 503


class ConditionFailed(StoreError):
    """A conditional write lost (the item already exists or changed)."""

    status_code = 409


def _boto_config(max_attempts: int) -> Any:
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=32,
    )


class TableClient:
    """One table (and optionally one spill bucket), spoken to from asyncio."""

    def __init__(
        self,
        table_name: str,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        s3_bucket: str | None = None,
        s3_prefix: str = "llamaws-spill",
        s3_endpoint_url: str | None = None,
        max_attempts: int = 8,
    ) -> None:
        import boto3
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        session = boto3.session.Session(region_name=region_name)
        config = _boto_config(max_attempts)
        self.table_name = table_name
        self.client: Any = session.client("dynamodb", endpoint_url=endpoint_url, config=config)
        self.spill: SpillStore | None = None
        if s3_bucket:
            s3 = session.client("s3", endpoint_url=s3_endpoint_url or endpoint_url, config=config)
            self.spill = SpillStore(s3, s3_bucket, f"{s3_prefix}/{table_name}")
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    # -- marshalling ------------------------------------------------------------

    def marshal(self, item: dict[str, Any]) -> dict[str, Any]:
        """Python values to DynamoDB attribute values (``None`` attributes dropped)."""
        return {k: self._serializer.serialize(v) for k, v in item.items() if v is not None}

    def unmarshal(self, item: dict[str, Any]) -> dict[str, Any]:
        """DynamoDB attribute values to Python values (numbers come back as Decimal)."""
        return {k: self._deserializer.deserialize(v) for k, v in item.items()}

    # -- requests ---------------------------------------------------------------

    async def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Run ``operation`` (a boto3 client method name) on this table, in a thread."""
        from botocore.exceptions import BotoCoreError, ClientError

        method = getattr(self.client, operation)
        try:
            result: dict[str, Any] = await asyncio.to_thread(method, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "Unknown")
            message = (
                f"DynamoDB {exc.operation_name} on table '{self.table_name}' failed: "
                f"{code}: {error.get('Message', '')}"
            )
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise ConditionFailed(message) from exc
            hint = (
                "Create it with `llamaws dynamodb create-table`."
                if code == "ResourceNotFoundException"
                else None
            )
            raise StoreError(message, hint=hint) from exc
        except BotoCoreError as exc:
            raise StoreError(
                f"DynamoDB {operation} on table '{self.table_name}' failed: {exc}"
            ) from exc
        return result

    async def put(
        self,
        item: dict[str, Any],
        *,
        payload: Iterable[str],
        condition: str | None = None,
        condition_values: dict[str, Any] | None = None,
        condition_names: dict[str, str] | None = None,
        return_old: bool = False,
    ) -> dict[str, Any] | None:
        """Write ``item``; its ``payload`` attributes go to S3 when it is too large.

        Returns the replaced item (unmarshalled, payload not loaded) with ``return_old``.
        """
        marshalled = await self._fit(item, tuple(payload))
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Item": marshalled}
        if condition is not None:
            kwargs["ConditionExpression"] = condition
        if condition_values:
            kwargs["ExpressionAttributeValues"] = self.marshal(condition_values)
        if condition_names:
            kwargs["ExpressionAttributeNames"] = condition_names
        if return_old:
            kwargs["ReturnValues"] = "ALL_OLD"
        response = await self.call("put_item", **kwargs)
        old = response.get("Attributes")
        return self.unmarshal(old) if old else None

    async def get(self, key: dict[str, str]) -> dict[str, Any] | None:
        """A strongly consistent read of one item, payload loaded."""
        response = await self.call(
            "get_item", TableName=self.table_name, Key=self.marshal(key), ConsistentRead=True
        )
        raw = response.get("Item")
        return await self.load(raw) if raw else None

    async def batch_get(self, keys: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Strongly consistent reads of many items (100 keys per request)."""
        from .table import READ_BATCH_LIMIT

        found: list[dict[str, Any]] = []
        unique = list({(k[PK], k[SK]): k for k in keys}.values())
        for start in range(0, len(unique), READ_BATCH_LIMIT):
            pending: dict[str, Any] = {
                self.table_name: {
                    "Keys": [self.marshal(k) for k in unique[start : start + READ_BATCH_LIMIT]],
                    "ConsistentRead": True,
                }
            }
            attempt = 0
            while pending:
                response = await self.call("batch_get_item", RequestItems=pending)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    found.append(await self.load(raw))
                pending = response.get("UnprocessedKeys") or {}
                attempt = await _backoff(attempt) if pending else attempt
        return found

    async def query_due(self, partition: str, now_ms: int, limit: int) -> list[dict[str, Any]]:
        """Items of a GSI1 due partition (``RUN#DUE``, ``WAIT#DUE``) due at or before
        ``now_ms``, earliest first: one Query of what is due, whatever else waits."""
        return await self.query(
            IndexName=GSI1,
            KeyConditionExpression="GSI1PK = :pk AND GSI1SK < :bound",
            ExpressionAttributeValues=self.marshal({":pk": partition, ":bound": due_bound(now_ms)}),
            Limit=limit,
        )

    async def query(self, **kwargs: Any) -> list[dict[str, Any]]:
        """All pages of a Query (or up to ``Limit`` items), payload loaded."""
        limit: int | None = kwargs.pop("Limit", None)
        items: list[dict[str, Any]] = []
        start_key: dict[str, Any] | None = None
        while True:
            request = {"TableName": self.table_name, **kwargs}
            if limit is not None:
                request["Limit"] = limit - len(items)
            if start_key is not None:
                request["ExclusiveStartKey"] = start_key
            response = await self.call("query", **request)
            for raw in response.get("Items", []):
                items.append(await self.load(raw))
            start_key = response.get("LastEvaluatedKey")
            if start_key is None or (limit is not None and len(items) >= limit):
                return items

    async def batch_delete(self, keys: list[dict[str, str]]) -> None:
        """Delete items, 25 per BatchWriteItem (DynamoDB's limit, guarded here)."""
        for start in range(0, len(keys), WRITE_BATCH_LIMIT):
            chunk = keys[start : start + WRITE_BATCH_LIMIT]
            assert len(chunk) <= WRITE_BATCH_LIMIT
            pending: dict[str, Any] = {
                self.table_name: [{"DeleteRequest": {"Key": self.marshal(k)}} for k in chunk]
            }
            attempt = 0
            while pending:
                response = await self.call("batch_write_item", RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                attempt = await _backoff(attempt) if pending else attempt

    # -- spill ------------------------------------------------------------------

    async def load(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Unmarshal ``raw`` and bring back its spilled payload, if any."""
        item = self.unmarshal(raw)
        key = item.pop(SPILL_ATTRIBUTE, None)
        if key is not None:
            if self.spill is None:
                raise StoreError(
                    f"item {item.get(PK)}/{item.get(SK)} of table '{self.table_name}' "
                    "has its payload in S3 but no spill bucket is configured"
                )
            item.update(await self.spill.get(str(key)))
        return item

    async def _fit(self, item: dict[str, Any], payload: tuple[str, ...]) -> dict[str, Any]:
        marshalled = self.marshal(item)
        size = item_size(marshalled)
        if size <= SPILL_THRESHOLD_BYTES:
            return marshalled
        if self.spill is None:
            raise StoreError(
                f"item {item[PK]}/{item[SK]} for table '{self.table_name}' is {size} bytes, "
                f"over DynamoDB's limit; no S3 bucket is configured to hold it",
                hint="Configure a spill bucket (--s3-bucket / s3_bucket=).",
            )
        moved = {name: item[name] for name in payload if item.get(name) is not None}
        kept = {k: v for k, v in item.items() if k not in moved}
        kept[SPILL_ATTRIBUTE] = await self.spill.put(item[PK], item[SK], moved)
        marshalled = self.marshal(kept)
        size = item_size(marshalled)
        if size > SPILL_THRESHOLD_BYTES:
            raise StoreError(
                f"item {item[PK]}/{item[SK]} for table '{self.table_name}' is still "
                f"{size} bytes without its payload"
            )
        return marshalled


async def _backoff(attempt: int) -> int:
    """Sleep before retrying unprocessed batch items; returns the next attempt number."""
    import random

    await asyncio.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))
    return attempt + 1
