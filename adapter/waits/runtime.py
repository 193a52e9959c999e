"""The runtime side of wait tokens: see waits open and close, end them inside the run.

- :class:`WaitsDecorator`, outermost of llamaws's runtime stack (local and Lambda):
  its internal adapter reports every journaled tick and every published event of a
  run to :class:`~.service.WaitTokens` (a token is issued when a step starts to
  wait; a run's end closes its waits). It never lets a failure of its own break
  the run: it logs it.
- :func:`add_unhandled_endings`: a workflow whose steps return
  ``InputRequiredEvent`` and that accepts no :class:`~.events.WaitFailed` /
  ``WaitTimedOut`` gets (on the instance only) a step that fails the run with the
  wait, the error and the cause.
- The ``wait_for_event`` hook: a waiter ended by llamaws raises
  :class:`~.events.WaitFailedError` / ``WaitTimedOutError`` instead of the bare
  ``TimeoutError`` of ``workflows``.
"""

from __future__ import annotations

import logging
import types
import weakref
from typing import TYPE_CHECKING

from typing_extensions import override
from workflows.decorators import step
from workflows.events import Event, InputRequiredEvent, StopEvent
from workflows.runtime.runtime_decorators import (
    BaseInternalRunAdapterDecorator,
    BaseRuntimeDecorator,
)
from workflows.runtime.types.plugin import InternalRunAdapter, Runtime
from workflows.runtime.types.ticks import WorkflowTick

from ..upstream import install_wait_end_hook, step_configs
from .events import WaitFailed, WaitFailedError, WaitTimedOut, WaitTimedOutError

if TYPE_CHECKING:
    from workflows import Workflow

    from .service import WaitTokens

__all__ = [
    "WaitsDecorator",
    "add_unhandled_endings",
    "register_workflow",
    "returns_input_required",
]

logger = logging.getLogger(__name__)

_waits_of_workflow: weakref.WeakKeyDictionary[Workflow, WaitTokens] = weakref.WeakKeyDictionary()


class WaitsDecorator(BaseRuntimeDecorator):
    """Reports what runs do to the deployment's :class:`~.service.WaitTokens`."""

    def __init__(self, decorated: Runtime, waits: WaitTokens) -> None:
        super().__init__(decorated)
        self._waits = waits

    @override
    def get_internal_adapter(self, workflow: Workflow) -> InternalRunAdapter:
        return _WaitsAdapter(self._decorated.get_internal_adapter(workflow), self._waits, workflow)


class _WaitsAdapter(BaseInternalRunAdapterDecorator):
    def __init__(
        self, decorated: InternalRunAdapter, waits: WaitTokens, workflow: Workflow
    ) -> None:
        from .service import RunWaits

        super().__init__(decorated)
        self._waits = waits
        self._run = RunWaits(run_id=decorated.run_id, workflow=workflow)

    @override
    async def on_tick(self, tick: WorkflowTick) -> None:
        await super().on_tick(tick)  # journaled once this returns
        if self.is_replaying():
            return
        try:
            await self._waits.observe_tick(self._run, tick)
        except Exception:
            logger.exception("wait tokens of run %s: tick %s not handled", self.run_id, tick.type)

    @override
    async def write_to_event_stream(self, event: Event) -> None:
        await super().write_to_event_stream(event)
        if self.is_replaying() or not isinstance(event, StopEvent):
            return
        try:
            await self._waits.observe_event(self._run, event)
        except Exception:
            logger.exception("wait tokens of run %s: end not handled", self.run_id)


# -- the workflow side ---------------------------------------------------------------------


class _UnhandledEndings:
    """Steps bound to a workflow instance that does not handle the end of its waits."""

    @step
    async def _llamaws_wait_failed(self, ev: WaitFailed) -> StopEvent:
        raise WaitFailedError(ev.waiter_id, ev.error, ev.cause)

    @step
    async def _llamaws_wait_timed_out(self, ev: WaitTimedOut) -> StopEvent:
        raise WaitTimedOutError(ev.waiter_id, ev.error, ev.cause)


def add_unhandled_endings(workflow: Workflow) -> list[str]:
    """Give ``workflow`` steps that fail the run on an unhandled ``WaitFailed`` /
    ``WaitTimedOut`` (see module doc); the names of the steps added."""
    if not returns_input_required(workflow):
        return []
    configs = step_configs(workflow)
    accepted = {t for config in configs.values() for t in config.accepted_events}
    added = []
    for ending, func in (
        (WaitFailed, _UnhandledEndings._llamaws_wait_failed),
        (WaitTimedOut, _UnhandledEndings._llamaws_wait_timed_out),
    ):
        if ending not in accepted and not hasattr(workflow, func.__name__):
            # A bound method with a step config is a step of this instance only.
            setattr(workflow, func.__name__, types.MethodType(func, workflow))
            added.append(func.__name__)
    return added


def returns_input_required(workflow: Workflow) -> bool:
    """Whether a step of ``workflow`` returns an ``InputRequiredEvent`` (opens input waits)."""
    return any(
        isinstance(t, type) and issubclass(t, InputRequiredEvent)
        for config in step_configs(workflow).values()
        for t in config.return_types
    )


def register_workflow(workflow: Workflow, waits: WaitTokens) -> None:
    """Route the ``wait_for_event`` hook for ``workflow``'s runs to ``waits``."""
    _waits_of_workflow[workflow] = waits
    install_wait_end_hook(_ending_exception)


async def _ending_exception(
    workflow: Workflow, run_id: str, waiter_id: str
) -> BaseException | None:
    waits = _waits_of_workflow.get(workflow)
    if waits is None:
        return None
    return await waits.ending_exception(run_id, waiter_id)
