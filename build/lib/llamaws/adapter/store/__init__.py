"""Workflow stores for the official server: DynamoDB (one table, S3 for large items).

``adapter.store.table`` (the schema) imports nothing heavy, so ``infra`` can use it;
the store itself is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import StoreError
    from .dynamo import DynamoSettings, DynamoWorkflowStore

__all__ = ["DynamoSettings", "DynamoWorkflowStore", "StoreError"]


def __getattr__(name: str) -> Any:
    if name in ("DynamoSettings", "DynamoWorkflowStore"):
        from . import dynamo

        return getattr(dynamo, name)
    if name == "StoreError":
        from .client import StoreError

        return StoreError
    raise AttributeError(name)
