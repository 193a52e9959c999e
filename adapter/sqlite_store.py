"""The reference SQLite store (``llamaws serve``'s default), with a purge that purges.

``SqliteWorkflowStore.delete`` (llama-agents-server 0.8.0) removes only the handler
rows: the runs' events, ticks and state stay in ``workflows.db`` for ever. Here a
delete also removes those rows (:func:`upstream.sqlite_delete_runs`) and the
handlers' wait tokens (``llamaws_wait_tokens``), as the DynamoDB store does.
"""

from __future__ import annotations

import asyncio
import sqlite3

from llama_agents.server import HandlerQuery, SqliteWorkflowStore

from .upstream import sqlite_delete_runs

__all__ = ["PurgingSqliteStore"]


class PurgingSqliteStore(SqliteWorkflowStore):
    """``SqliteWorkflowStore`` whose ``delete`` leaves nothing of a handler behind."""

    async def delete(self, query: HandlerQuery) -> int:
        found = await self.query(query)
        deleted = await super().delete(query)
        if not found:
            return deleted
        await sqlite_delete_runs(self, [h.run_id for h in found if h.run_id])
        await asyncio.to_thread(self._delete_tokens, [h.handler_id for h in found])
        return deleted

    def _delete_tokens(self, handler_ids: list[str]) -> None:
        marks = ",".join("?" * len(handler_ids))
        conn = sqlite3.connect(self.db_path, timeout=30.0)
        try:
            with conn:
                conn.execute(
                    f"DELETE FROM llamaws_wait_tokens WHERE handler_id IN ({marks})",
                    tuple(handler_ids),
                )
        except sqlite3.OperationalError as exc:  # no wait tokens were ever issued here
            if "no such table" not in str(exc):
                raise
        finally:
            conn.close()
