"""The workflow runtime stack llamaws gives the official WorkflowServer.

It is the server's default stack (tick persistence with resume, idle release)
with three defects of ``llama-agents-server`` 0.8.0 fixed at their narrowest point:

- **Lost answers.** ``BasicRuntime`` keeps a run's control-loop task only through a
  ``WeakValueDictionary``, and the server drops the handler it gets from
  ``workflow.run()``. A run waiting for input is then garbage, and the cyclic GC
  collects it: the next ``POST /events`` answers 200 and the event goes nowhere.
  :class:`RetainRunsDecorator` holds a strong reference to every live run until it
  ends.
- **Fresh handlers not resumed.** The default stack skips handlers started less
  than 30 s before a restart; llamaws resumes every ``running`` handler that started
  before this start, however recently, and none that started after the resume
  began (another process sharing the store may be driving it).
- **Idle release races.** The upstream idle-release decorator can abort a run that
  an event just woke, or undo a cancel; llamaws's own
  (:mod:`adapter.idle_release`) decides under one lock per run.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from llama_agents.server import AbstractWorkflowStore
from typing_extensions import override
from workflows.context.serializers import BaseSerializer
from workflows.events import StartEvent
from workflows.plugins.basic import BasicRuntime
from workflows.runtime.runtime_decorators import BaseRuntimeDecorator
from workflows.runtime.types.internal_state import BrokerState
from workflows.runtime.types.plugin import (
    ExternalRunAdapter,
    Runtime,
    V2RuntimeCompatibilityShim,
)
from workflows.workflow import Workflow

from .idle_release import IdleReleaseDecorator
from .snapshots import SnapshotPersistence

__all__ = ["RetainRunsDecorator", "durable_runtime"]

logger = logging.getLogger(__name__)


class RetainRunsDecorator(BaseRuntimeDecorator):
    """Keeps every live run strongly referenced until its control loop ends."""

    def __init__(self, decorated: Runtime) -> None:
        super().__init__(decorated)
        self._live: dict[str, ExternalRunAdapter] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    @property
    def live_run_ids(self) -> frozenset[str]:
        """Run ids whose control loop is still in memory."""
        return frozenset(self._live)

    @override
    def run_workflow(
        self,
        run_id: str,
        workflow: Workflow,
        init_state: BrokerState,
        start_event: StartEvent | None = None,
        serialized_state: dict[str, Any] | None = None,
        serializer: BaseSerializer | None = None,
    ) -> ExternalRunAdapter:
        adapter = super().run_workflow(
            run_id,
            workflow,
            init_state,
            start_event=start_event,
            serialized_state=serialized_state,
            serializer=serializer,
        )
        self._live[run_id] = adapter
        watcher = asyncio.get_running_loop().create_task(self._release_when_done(adapter))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return adapter

    def release(self, run_id: str) -> None:
        """Stop a run's control loop in memory (its journal is kept; it can be resumed)."""
        adapter = self._live.pop(run_id, None)
        if isinstance(adapter, V2RuntimeCompatibilityShim):
            adapter.abort()

    async def _release_when_done(self, adapter: ExternalRunAdapter) -> None:
        try:
            await adapter.get_result()
        except BaseException:  # any end of the run releases it
            pass
        finally:
            if self._live.get(adapter.run_id) is adapter:
                del self._live[adapter.run_id]


def durable_runtime(store: AbstractWorkflowStore, *, idle_timeout: float = 60.0) -> Runtime:
    """The server's durable stack: llamaws's idle release over a run-retaining runtime."""
    persisted = SnapshotPersistence(
        RetainRunsDecorator(BasicRuntime()),
        store=store,
        # Resume what was running before this start, however recently it started, and
        # nothing that started after it began (a run of another process sharing the
        # store, seen without its first tick, would be failed as crashed).
        resume_fresh_handler_grace=timedelta(0),
    )
    return IdleReleaseDecorator(persisted, store=store, idle_timeout=idle_timeout)
