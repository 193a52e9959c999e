"""Open the workflow store the emulator persists runs in."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from llama_agents.server import AbstractWorkflowStore, MemoryWorkflowStore, SqliteWorkflowStore

__all__ = ["Persistence", "open_store"]

Persistence = Literal["memory", "local"]

DEFAULT_DB_NAME = "workflows.db"


def open_store(
    persistence: Persistence, config_dir: Path, local_path: Path | None = None
) -> AbstractWorkflowStore:
    """``memory``: lost on exit. ``local``: SQLite, ``workflows.db`` next to the config."""
    if persistence == "memory":
        return MemoryWorkflowStore()
    db_path = local_path if local_path is not None else config_dir / DEFAULT_DB_NAME
    if db_path.is_dir():
        db_path = db_path / DEFAULT_DB_NAME
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # The server reads the event log from the store; poll it often locally.
    return SqliteWorkflowStore(str(db_path), poll_interval=0.2)
