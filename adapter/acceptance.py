"""Which events a run can take now, and the refusal of any other.

``llama-agents-server`` 0.8.0 answers 200 "sent" to ``POST /events/<id>`` for any
registered event type: one that no step accepts and no ``ctx.wait_for_event``
waits for is dropped by the run's control loop, a ``StartEvent`` re-runs the
first step, and a ``HumanResponseEvent`` without ``response`` reaches the step
that reads it and fails the run. An event the run can take is

- an event a step accepts (its declared input types, except ``StartEvent``: it
  only ever starts a run), or
- an event an open wait of the run waits for (type and requirements), read from
  the run's journal (its ticks) so it holds whichever process serves the request;

and, when it is the framework's ``HumanResponseEvent`` (which declares no fields),
it carries ``response``. :func:`run_acceptance` tells what a run takes;
:meth:`RunAcceptance.check` raises :class:`EventRefused` (400) naming those types.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from llama_agents.server import AbstractWorkflowStore
from workflows import Workflow
from workflows.events import Event, HumanResponseEvent, StartEvent
from workflows.runtime.control_loop.reduce import replay_ticks_stream
from workflows.runtime.types.internal_state import BrokerState

from .errors import LlamawsError
from .upstream import event_matches, stream_workflow_ticks

__all__ = ["EventRefused", "OpenWait", "RunAcceptance", "run_acceptance"]

logger = logging.getLogger(__name__)


class EventRefused(LlamawsError):
    """An event the run cannot take now (it would be dropped or harm the run)."""

    status_code = 400


@dataclass(frozen=True)
class OpenWait:
    """A ``ctx.wait_for_event`` of the run that no event has resolved yet."""

    step: str
    waiter_id: str
    event_type: type[Event]
    requirements: dict[str, Any] = field(default_factory=dict)

    def matches(self, event: Event, *, allow_subclasses: bool = False) -> bool:
        return event_matches(event, self.event_type, allow_subclasses=allow_subclasses) and all(
            getattr(event, key, None) == value for key, value in self.requirements.items()
        )


@dataclass(frozen=True)
class _Step:
    accepted: tuple[type[Event], ...]
    allow_subclasses: bool

    def accepts(self, event: Event) -> bool:
        return any(
            event_matches(event, accepted, allow_subclasses=self.allow_subclasses)
            for accepted in self.accepted
        )


@dataclass(frozen=True)
class RunAcceptance:
    """What one run can take now: its steps' input types and its open waits."""

    steps: dict[str, _Step]
    waits: tuple[OpenWait, ...] = ()

    def type_names(self, step: str | None = None) -> list[str]:
        """Names of the event types the run (or its step ``step``) can take, sorted."""
        names = {
            accepted.__name__
            for name, config in self.steps.items()
            if step is None or name == step
            for accepted in config.accepted
        }
        names |= {w.event_type.__name__ for w in self.waits if step is None or w.step == step}
        return sorted(names)

    def accepts(self, event: Event, step: str | None = None) -> bool:
        """Whether a step or an open wait takes ``event`` (only ``step``'s, when given)."""
        if isinstance(event, StartEvent):
            return False
        for name, config in self.steps.items():
            if step is not None and name != step:
                continue
            if config.accepts(event):
                return True
            if any(
                w.matches(event, allow_subclasses=config.allow_subclasses)
                for w in self.waits
                if w.step == name
            ):
                return True
        return False

    def check(self, event: Event, step: str | None = None) -> None:
        """Raise :class:`EventRefused` unless the run can take ``event`` now."""
        kind = type(event).__name__
        if step is not None and step not in self.steps:
            raise EventRefused(
                f"The workflow has no step {step!r}; its steps: {', '.join(sorted(self.steps))}."
            )
        if not self.accepts(event, step):
            target = f"step {step!r}" if step is not None else "this run"
            takes = ", ".join(self.type_names(step)) or "no events"
            reason = (
                "a StartEvent only starts a run"
                if isinstance(event, StartEvent)
                else "no step accepts it and no wait of the run waits for it"
            )
            raise EventRefused(
                f"{kind} was not sent: {reason}. {target[0].upper()}{target[1:]} can take "
                f"now: {takes}."
            )
        if _lacks_response(event):
            raise EventRefused(
                f"{kind} needs a 'response': send "
                f'{{"type": "{kind}", "value": {{"response": ...}}}}.'
            )


def _lacks_response(event: Event) -> bool:
    """A fieldless ``HumanResponseEvent`` (the framework's own) without ``response``."""
    return (
        isinstance(event, HumanResponseEvent)
        and not type(event).model_fields
        and not hasattr(event, "response")
    )


async def run_acceptance(
    store: AbstractWorkflowStore, workflow: Workflow, run_id: str
) -> RunAcceptance:
    """What ``run_id`` (a run of ``workflow``) can take now, from its journal in ``store``."""
    state = BrokerState.from_workflow(workflow)
    steps = {
        step_id.name: _Step(
            tuple(
                t
                for t in config.accepted_events
                if isinstance(t, type) and issubclass(t, Event) and not issubclass(t, StartEvent)
            ),
            config.accept_event_subclasses,
        )
        for step_id, config in state.config.steps.items()
        if not step_id.namespace
    }
    try:
        serializer = workflow.runtime.get_serializer(workflow)
        ticks = stream_workflow_ticks(store, run_id, serializer=serializer)
        replayed = (await replay_ticks_stream(state, ticks, run_id=run_id)).state
    except Exception:
        # An unreadable journal must not make every event bounce: the steps' types
        # still hold, and the run itself reports what it cannot replay.
        logger.warning("cannot replay run %s to read its waits", run_id, exc_info=True)
        return RunAcceptance(steps=steps)
    waits = tuple(
        OpenWait(
            step=step_id.name,
            waiter_id=waiter.waiter_id,
            event_type=waiter.waiting_for_event,
            requirements=dict(waiter.requirements),
        )
        for step_id, worker in replayed.workers.items()
        if not step_id.namespace
        for waiter in worker.collected_waiters
        if waiter.resolved_event is None and not waiter.timed_out
    )
    return RunAcceptance(steps=steps, waits=waits)
