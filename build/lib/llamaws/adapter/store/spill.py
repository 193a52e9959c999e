"""Large payloads: kept in S3, the DynamoDB item keeps a pointer.

An item whose estimated size passes :data:`~adapter.store.table.SPILL_THRESHOLD_BYTES`
has its payload attributes (event / tick / state JSON, a handler's result and
error) written as one JSON object to S3 under a fresh key; the item keeps the
key in :data:`SPILL_ATTRIBUTE`. Readers load it back transparently. Keys are
unique per write, so a losing conditional write never overwrites the winner's
object.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

__all__ = ["SPILL_ATTRIBUTE", "SpillStore"]

SPILL_ATTRIBUTE = "spill"
"""Attribute holding the S3 key of an item's spilled payload."""


class SpillStore:
    """An S3 bucket (and key prefix) for payloads too large for an item."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.rstrip("/")

    async def put(self, partition: str, sort_key: str, payload: dict[str, Any]) -> str:
        """Store ``payload``; return the key to keep in the item."""
        key = f"{self.prefix}/{partition}/{sort_key}/{uuid.uuid4().hex}.json"
        body = json.dumps(payload, separators=(",", ":")).encode()
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
        )
        return key

    async def get(self, key: str) -> dict[str, Any]:
        """The payload stored under ``key``."""

        def read() -> bytes:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = response["Body"].read()
            return data

        payload: dict[str, Any] = json.loads(await asyncio.to_thread(read))
        return payload

    async def delete(self, keys: list[str]) -> None:
        """Remove spilled objects (1000 per request, S3's limit)."""
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            await asyncio.to_thread(
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
            )

    def ensure_bucket(self) -> bool:
        """Create the bucket when missing (local engines); True when created."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self.client.exceptions.ClientError:
            self.client.create_bucket(Bucket=self.bucket)
            return True
        return False
