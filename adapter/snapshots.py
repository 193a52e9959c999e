"""Bounded resume: a run restarts from its latest snapshot plus the ticks after it.

The reference server rebuilds a run's context by replaying its whole tick journal,
so each resume costs more than the last (a long HITL conversation gets slower and
dearer every turn). llamaws keeps **snapshots** of the rebuilt context beside the
ticks (``R#<run_id>`` / ``C#<last tick>`` on DynamoDB) and resumes from the newest.

**When a snapshot is written** (:data:`SNAPSHOT_EVERY` = 32): whenever a run is
rebuilt — at a resume, and when the Lambda driver leaves a run idle (waiting for
input) — and at least 32 ticks were applied since the last one. Both are points
where no step is half done, and the snapshot is the very state the live run
continues from (a resume serializes the context the same way), so replaying from it
gives the same run as replaying everything. Resuming then applies fewer than 32
ticks plus the ticks of the session since (one invocation's work at most, a few
per conversation turn): flat in the length of the history. 32 keeps the snapshot
writes (one item of the size of the context, which can be large) to about one per
32 ticks — a few per hundred steps — while a replay of 32 ticks costs a few
milliseconds; snapshotting every idle point would write a context per turn.

Stores without snapshots (the reference SQLite and in-memory stores) replay the
whole journal, as upstream does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from workflows.workflow import Workflow

from .upstream import (
    PersistenceDecorator,
    ReplayedContext,
    StoredTick,
    TickPersistenceDecorator,
    replay_journal,
)

__all__ = [
    "SNAPSHOT_EVERY",
    "SnapshotPersistence",
    "SnapshotStore",
    "SnapshotTickPersistence",
    "rebuild",
]

logger = logging.getLogger(__name__)

SNAPSHOT_EVERY = 32
"""A snapshot is written when a rebuild applied at least this many ticks."""


@runtime_checkable
class SnapshotStore(Protocol):
    """A workflow store that keeps snapshots (``DynamoWorkflowStore``)."""

    async def latest_snapshot(self, run_id: str) -> tuple[int, dict[str, Any]] | None: ...

    async def save_snapshot(self, run_id: str, sequence: int, context: dict[str, Any]) -> None: ...

    def stream_ticks_after(self, run_id: str, after: int | None) -> AsyncIterator[StoredTick]: ...


async def rebuild(
    store: SnapshotStore,
    workflow: Workflow,
    run_id: str,
    *,
    every: int = SNAPSHOT_EVERY,
    use_snapshots: bool = True,
) -> ReplayedContext | None:
    """The run's context from its latest snapshot and the ticks after it; writes a new
    snapshot when ``every`` ticks or more were applied and the run is not finished."""
    latest = await store.latest_snapshot(run_id) if use_snapshots else None
    after, snapshot = latest if latest is not None else (None, None)
    replay = await replay_journal(
        workflow, run_id, snapshot, store.stream_ticks_after(run_id, after)
    )
    if replay is None:
        return None
    if (
        use_snapshots
        and replay.last_sequence is not None
        and replay.ticks >= every
        and replay.replayed.exit_command is None
    ):
        await store.save_snapshot(run_id, replay.last_sequence, replay.state)
    return replay.replayed


class _Snapshots:
    """``context_from_ticks`` from snapshots when the store keeps them."""

    _store: Any
    snapshot_every: int = SNAPSHOT_EVERY
    """0: never snapshot, always replay the whole journal (as upstream)."""

    async def context_from_ticks(self, workflow: Workflow, run_id: str) -> ReplayedContext | None:
        if isinstance(self._store, SnapshotStore):
            return await rebuild(
                self._store,
                workflow,
                run_id,
                every=self.snapshot_every,
                use_snapshots=self.snapshot_every > 0,
            )
        found: ReplayedContext | None = await super().context_from_ticks(  # type: ignore[misc]
            workflow, run_id
        )
        return found

    async def checkpoint(self, workflow: Workflow, run_id: str) -> None:
        """At a quiet point (the run idle): snapshot it if enough ticks came since."""
        if isinstance(self._store, SnapshotStore) and self.snapshot_every > 0:
            try:
                await rebuild(self._store, workflow, run_id, every=self.snapshot_every)
            except Exception:  # a snapshot is an optimisation: never fail the run for it
                logger.exception("snapshot of run %s failed", run_id)


class SnapshotTickPersistence(_Snapshots, TickPersistenceDecorator):
    """Tick persistence that resumes from snapshots (the Lambda runtime's)."""


class SnapshotPersistence(_Snapshots, PersistenceDecorator):
    """Tick persistence with resume at start, from snapshots (``llamaws serve``)."""
