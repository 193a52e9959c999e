"""A run's ``ctx.store`` state in DynamoDB: one item per (run, namespace)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, Literal

from pydantic import BaseModel
from typing_extensions import TypeVar
from workflows.context.serializers import BaseSerializer
from workflows.context.state_store import DictState
from workflows.context.state_store_integration import StateRecord, StateStoreFacade

from .client import TableClient
from .table import PK, SK, STATE, TTL_ATTRIBUTE, run_key, state_key

__all__ = ["DynamoSerializedState", "DynamoStateStore"]

MODEL_T = TypeVar("MODEL_T", bound=BaseModel, default=DictState)  # type: ignore[misc]


class DynamoSerializedState(BaseModel):
    """The reconnect handle of a DynamoDB-backed state: the run it belongs to."""

    store_type: Literal["dynamodb"] = "dynamodb"
    run_id: str


class _DynamoStateStorage:
    """Raw load / save of one state item (the facade owns locking and encoding)."""

    def __init__(
        self,
        table: TableClient,
        run_id: str,
        namespace: tuple[str, ...],
        expires_at: Callable[[], int | None],
    ) -> None:
        self._table = table
        self._run_id = run_id
        self._namespace = namespace
        self._expires_at = expires_at

    @property
    def run_id(self) -> str:
        return self._run_id

    @asynccontextmanager
    async def session(self) -> AsyncIterator[_DynamoStateStorage]:
        yield self

    async def load(self) -> StateRecord | None:
        item = await self._table.get(state_key(self._run_id, self._namespace))
        if item is None:
            return None
        return StateRecord(
            data=item["data"],
            state_type=item.get("state_type"),
            state_module=item.get("state_module"),
        )

    async def save(self, record: StateRecord) -> None:
        await self._table.put(
            {
                **state_key(self._run_id, self._namespace),
                "data": record.data,
                "state_type": record.state_type,
                "state_module": record.state_module,
                "updated_ms": time.time_ns() // 1_000_000,
                TTL_ATTRIBUTE: self._expires_at(),
            },
            payload=("data",),
        )

    def to_handle(self) -> dict[str, Any]:
        return DynamoSerializedState(run_id=self._run_id).model_dump()

    def parse_own_handle(self, payload: dict[str, Any]) -> DynamoSerializedState | None:
        if payload.get("store_type") != "dynamodb":
            return None
        return DynamoSerializedState.model_validate(payload)

    async def copy_from_handle(self, handle: DynamoSerializedState) -> None:
        """Copy every namespace of another run's state into this run."""
        items = await self._table.query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
            ExpressionAttributeValues=self._table.marshal(
                {":pk": run_key(handle.run_id), ":prefix": STATE}
            ),
            ConsistentRead=True,
        )
        for item in items:
            copied = {**item, PK: run_key(self._run_id), SK: item[SK]}
            copied[TTL_ATTRIBUTE] = self._expires_at()
            await self._table.put(copied, payload=("data",))


class DynamoStateStore(StateStoreFacade[MODEL_T], Generic[MODEL_T]):
    """The state facade of one (run, namespace) over its DynamoDB item."""

    def __init__(
        self,
        table: TableClient,
        run_id: str,
        namespace: tuple[str, ...] = (),
        state_type: type[MODEL_T] | None = None,
        serializer: BaseSerializer | None = None,
        expires_at: Callable[[], int | None] = lambda: None,
    ) -> None:
        super().__init__(
            _DynamoStateStorage(table, run_id, namespace, expires_at), state_type, serializer
        )
