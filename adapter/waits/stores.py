"""Where wait tokens are kept: one store per workflow store, every change conditional.

- :class:`SqliteTokenStore`: the table ``llamaws_wait_tokens`` in the emulator's
  SQLite file (the workflow store's own tables are upstream's; this one is ours);
- :class:`MemoryTokenStore`: for ``--persistence memory`` (lost on exit, like the runs);
- ``llamaws.adapter.store.tokens.DynamoTokenStore``: items in the deployment table.

Every state change is one conditional write: :meth:`TokenStore.close` succeeds only
from ``open`` (and, per ``guard``, before or after the deadlines); the loser gets
:class:`TokenConflict` with the record as it now is.
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from .tokens import TokenRecord, WaitStatus

if TYPE_CHECKING:
    from llama_agents.server import AbstractWorkflowStore

__all__ = [
    "Guard",
    "MemoryTokenStore",
    "SqliteTokenStore",
    "TokenConflict",
    "TokenStore",
    "token_store_for",
]

Guard = Literal["live", "due", "open"]
"""When a close may happen: ``live`` (open, before both deadlines: success, failure,
heartbeat), ``due`` (open, a deadline passed: expiry), ``open`` (the run ended it)."""

RETENTION_MS = 7 * 86_400_000
"""Closed tokens are removed this long after they closed (DynamoDB: TTL)."""


class TokenConflict(Exception):
    """A conditional change lost: ``current`` is the record now (``None``: none)."""

    def __init__(self, current: TokenRecord | None) -> None:
        super().__init__(current.status if current else "missing")
        self.current = current


def guard_holds(record: TokenRecord, guard: Guard, now_ms: int) -> bool:
    """Whether ``record`` may be closed under ``guard`` at ``now_ms``."""
    if record.status != "open":
        return False
    if guard == "live":
        return record.live(now_ms)
    if guard == "due":
        due = record.due_ms
        return due is not None and due <= now_ms
    return True


class TokenStore(ABC):
    """Create, find and conditionally change wait tokens."""

    @abstractmethod
    async def create(self, record: TokenRecord) -> None:
        """Add a new open token."""

    @abstractmethod
    async def get(self, token: str) -> TokenRecord | None:
        """The record of ``token`` (a strongly consistent read)."""

    @abstractmethod
    async def for_handler(self, handler_id: str) -> list[TokenRecord]:
        """Every token of a handler's waits, oldest first."""

    @abstractmethod
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
        """Close ``record``'s token if ``guard`` holds; :class:`TokenConflict` otherwise."""

    @abstractmethod
    async def reopen(self, record: TokenRecord) -> None:
        """Undo :meth:`close` (the ending could not be delivered); no-op if it changed since."""

    @abstractmethod
    async def heartbeat(self, record: TokenRecord, now_ms: int) -> TokenRecord:
        """Push the heartbeat deadline of a live token; :class:`TokenConflict` otherwise."""

    @abstractmethod
    async def due(self, now_ms: int, limit: int = 100) -> list[TokenRecord]:
        """Open tokens whose earliest deadline is at or before ``now_ms``."""

    async def cleanup(self, now_ms: int) -> int:
        """Remove tokens closed more than :data:`RETENTION_MS` ago; how many went."""
        return 0


def _heartbeat_ms(record: TokenRecord, now_ms: int) -> int | None:
    if record.heartbeat_seconds is None:
        return record.heartbeat_ms
    return now_ms + int(record.heartbeat_seconds * 1000)


# -- memory ----------------------------------------------------------------------------------


class MemoryTokenStore(TokenStore):
    """Tokens in a dict (no ``await`` inside a change: each change is atomic)."""

    def __init__(self) -> None:
        self._records: dict[str, TokenRecord] = {}

    async def create(self, record: TokenRecord) -> None:
        if record.token in self._records:
            raise TokenConflict(self._records[record.token])
        self._records[record.token] = record

    async def get(self, token: str) -> TokenRecord | None:
        return self._records.get(token)

    async def for_handler(self, handler_id: str) -> list[TokenRecord]:
        found = [r for r in self._records.values() if r.handler_id == handler_id]
        return sorted(found, key=lambda r: (r.created_ms, r.token))

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
        current = self._records.get(record.token)
        if current is None or not guard_holds(current, guard, now_ms):
            raise TokenConflict(current)
        closed = current.closed(status, now_ms, ended_by, error, cause)
        self._records[record.token] = closed
        return closed

    async def reopen(self, record: TokenRecord) -> None:
        current = self._records.get(record.token)
        if current is not None and (current.status, current.ended_ms) == (
            record.status,
            record.ended_ms,
        ):
            self._records[record.token] = _reopened(current)

    async def heartbeat(self, record: TokenRecord, now_ms: int) -> TokenRecord:
        current = self._records.get(record.token)
        if current is None or not guard_holds(current, "live", now_ms):
            raise TokenConflict(current)
        updated = replace(current, heartbeat_ms=_heartbeat_ms(current, now_ms))
        self._records[record.token] = updated
        return updated

    async def due(self, now_ms: int, limit: int = 100) -> list[TokenRecord]:
        found = [r for r in self._records.values() if guard_holds(r, "due", now_ms)]
        return sorted(found, key=lambda r: r.due_ms or 0)[:limit]

    async def cleanup(self, now_ms: int) -> int:
        old = [
            t
            for t, r in self._records.items()
            if r.ended_ms is not None and r.ended_ms < now_ms - RETENTION_MS
        ]
        for token in old:
            del self._records[token]
        return len(old)


def _reopened(record: TokenRecord) -> TokenRecord:
    return replace(record, status="open", ended_ms=None, ended_by=None, error=None, cause=None)


# -- SQLite ----------------------------------------------------------------------------------

_COLUMNS = (
    "token",
    "handler_id",
    "run_id",
    "deployment",
    "workflow_name",
    "waiter_id",
    "kind",
    "step",
    "expected_events",
    "created_ms",
    "timeout_ms",
    "heartbeat_seconds",
    "heartbeat_ms",
    "status",
    "ended_ms",
    "ended_by",
    "error",
    "cause",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS llamaws_wait_tokens (
    token TEXT PRIMARY KEY,
    handler_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    deployment TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    waiter_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT NOT NULL,
    expected_events TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    timeout_ms INTEGER,
    heartbeat_seconds REAL,
    heartbeat_ms INTEGER,
    status TEXT NOT NULL,
    ended_ms INTEGER,
    ended_by TEXT,
    error TEXT,
    cause TEXT,
    due_ms INTEGER
);
CREATE INDEX IF NOT EXISTS llamaws_wait_tokens_by_handler
    ON llamaws_wait_tokens (handler_id, created_ms);
CREATE INDEX IF NOT EXISTS llamaws_wait_tokens_by_due
    ON llamaws_wait_tokens (status, due_ms);
"""
_GUARDS: dict[Guard, str] = {
    "live": "status = 'open' AND (due_ms IS NULL OR due_ms > :now)",
    "due": "status = 'open' AND due_ms <= :now",
    "open": "status = 'open'",
}


class SqliteTokenStore(TokenStore):
    """The table ``llamaws_wait_tokens`` in a SQLite file (the emulator's ``workflows.db``).

    Like the workflow store beside it, each call opens a connection and runs on the
    event loop; a change is one ``UPDATE … WHERE`` whose row count says who won.
    """

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=30.0)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    async def create(self, record: TokenRecord) -> None:
        row = _row(record)
        names = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        try:
            with self._connect() as conn:
                conn.execute(f"INSERT INTO llamaws_wait_tokens ({names}) VALUES ({marks})", row)
        except sqlite3.IntegrityError:
            raise TokenConflict(await self.get(record.token)) from None

    async def get(self, token: str) -> TokenRecord | None:
        with self._connect() as conn:
            found = conn.execute(
                "SELECT * FROM llamaws_wait_tokens WHERE token = ?", (token,)
            ).fetchone()
        return _record(found) if found else None

    async def for_handler(self, handler_id: str) -> list[TokenRecord]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM llamaws_wait_tokens WHERE handler_id = ? ORDER BY created_ms, token",
                (handler_id,),
            ).fetchall()
        return [_record(row) for row in rows]

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
        with self._connect() as conn:
            changed = conn.execute(
                "UPDATE llamaws_wait_tokens SET status = :status, ended_ms = :now, "
                "ended_by = :ended_by, error = :error, cause = :cause "
                f"WHERE token = :token AND {_GUARDS[guard]}",
                {
                    "status": status,
                    "now": now_ms,
                    "ended_by": ended_by,
                    "error": error,
                    "cause": cause,
                    "token": record.token,
                },
            ).rowcount
        current = await self.get(record.token)
        if changed != 1 or current is None:
            raise TokenConflict(current)
        return current

    async def reopen(self, record: TokenRecord) -> None:
        with self._connect() as conn:
            conn.execute(
                "UPDATE llamaws_wait_tokens SET status = 'open', ended_ms = NULL, "
                "ended_by = NULL, error = NULL, cause = NULL "
                "WHERE token = ? AND status = ? AND ended_ms IS ?",
                (record.token, record.status, record.ended_ms),
            )

    async def heartbeat(self, record: TokenRecord, now_ms: int) -> TokenRecord:
        pushed = replace(record, heartbeat_ms=_heartbeat_ms(record, now_ms))
        with self._connect() as conn:
            changed = conn.execute(
                "UPDATE llamaws_wait_tokens SET heartbeat_ms = :hb, due_ms = :due "
                f"WHERE token = :token AND {_GUARDS['live']}",
                {
                    "hb": pushed.heartbeat_ms,
                    "due": pushed.due_ms,
                    "token": record.token,
                    "now": now_ms,
                },
            ).rowcount
        current = await self.get(record.token)
        if changed != 1 or current is None:
            raise TokenConflict(current)
        return current

    async def due(self, now_ms: int, limit: int = 100) -> list[TokenRecord]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM llamaws_wait_tokens WHERE status = 'open' AND due_ms <= ? "
                "ORDER BY due_ms LIMIT ?",
                (now_ms, limit),
            ).fetchall()
        return [_record(row) for row in rows]

    async def cleanup(self, now_ms: int) -> int:
        with self._connect() as conn:
            return conn.execute(
                "DELETE FROM llamaws_wait_tokens WHERE status != 'open' AND ended_ms < ?",
                (now_ms - RETENTION_MS,),
            ).rowcount


def _row(record: TokenRecord) -> dict[str, Any]:
    row = {name: getattr(record, name) for name in _COLUMNS}
    row["expected_events"] = json.dumps(list(record.expected_events))
    row["due_ms"] = record.due_ms
    return row


def _record(row: sqlite3.Row) -> TokenRecord:
    values = {name: row[name] for name in _COLUMNS}
    values["expected_events"] = tuple(json.loads(values["expected_events"]))
    return TokenRecord(**values)


# -- choosing one ----------------------------------------------------------------------------


def token_store_for(workflow_store: AbstractWorkflowStore) -> TokenStore:
    """The token store that lives where ``workflow_store`` keeps runs."""
    from llama_agents.server import SqliteWorkflowStore

    from ..store.dynamo import DynamoWorkflowStore

    if isinstance(workflow_store, DynamoWorkflowStore):
        from ..store.tokens import DynamoTokenStore

        return DynamoTokenStore(workflow_store.table, settings=workflow_store.settings)
    if isinstance(workflow_store, SqliteWorkflowStore):
        return SqliteTokenStore(workflow_store.db_path)
    return MemoryTokenStore()
