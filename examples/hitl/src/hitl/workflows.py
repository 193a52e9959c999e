"""Ways a run waits for a person.

- ``ask``: a step returns a ``PromptEvent`` (an ``InputRequiredEvent``); another step accepts the
  ``HumanResponseEvent`` posted to ``/events/<handler_id>``.
- ``quiz``: a step waits with ``ctx.wait_for_event`` for a typed ``AnswerEvent``
  (no ``additional_events`` needed: llamaws registers waited-for types itself).
- ``approval``: asks for an approval that must come within ``timeout_seconds``; the
  wait's token approves it (``llamaws tokens success``), rejects it (``llamaws tokens
  failure``: a ``WaitFailed`` event) or lets it time out (a ``WaitTimedOut`` event).

Every wait gets a token, announced in the event stream (``WaitTokenIssued``) and
listed at ``/handlers/<handler_id>/waits``; ``ask`` and ``quiz`` need nothing of llamaws.
``approval`` imports its events from ``llamaws.adapter.waits``, which is there wherever
llamaws runs an app (the emulator's environment, the Lambda bundle).
"""

from workflows import Context, Workflow, step
from workflows.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)

from llamaws.adapter.waits import WaitFailed, WaitTimedOut


class PromptEvent(InputRequiredEvent):
    """Published when the run needs an answer: the prompt to show."""

    prompt: str


class AskWorkflow(Workflow):
    """Asks ``prompt`` and finishes with ``You said: <response>``."""

    @step
    async def ask(self, ev: StartEvent) -> PromptEvent:
        return PromptEvent(prompt=ev.get("prompt", "What is your favourite colour?"))

    @step
    async def answer(self, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=f"You said: {ev.response}")


class QuestionEvent(Event):
    """Published while the quiz waits: the question to answer."""

    question: str


class AnswerEvent(Event):
    """The typed answer the quiz waits for."""

    answer: str


class QuizWorkflow(Workflow):
    """Waits for an ``AnswerEvent`` and finishes with ``Answer: <answer>``."""

    @step
    async def quiz(self, ctx: Context, ev: StartEvent) -> StopEvent:
        question = ev.get("question", "What is 6 x 7?")
        reply = await ctx.wait_for_event(
            AnswerEvent,
            waiter_event=QuestionEvent(question=question),
            waiter_id="quiz-answer",
            timeout=None,
        )
        return StopEvent(result=f"Answer: {reply.answer}")


class ApprovalRequested(InputRequiredEvent):
    """Published when a decision is needed: what to approve, and how long it may take."""

    summary: str
    timeout_seconds: float
    """The wait's deadline (llamaws reads it from the event)."""


class Approved(HumanResponseEvent):
    """The approval, sent with the wait's token."""

    approver: str


class ApprovalWorkflow(Workflow):
    """Finishes with who approved, why it was rejected, or that nobody decided in time."""

    @step
    async def request(self, ev: StartEvent) -> ApprovalRequested:
        return ApprovalRequested(
            summary=ev.get("summary", "Deploy v2 to production"),
            timeout_seconds=float(ev.get("timeout_seconds", 300)),
        )

    @step
    async def approved(self, ev: Approved) -> StopEvent:
        return StopEvent(result=f"Approved by {ev.approver}")

    @step
    async def rejected(self, ev: WaitFailed) -> StopEvent:
        return StopEvent(result=f"Not approved: {ev.error}: {ev.cause}")

    @step
    async def expired(self, ev: WaitTimedOut) -> StopEvent:
        return StopEvent(result=f"Not approved in time: {ev.cause}")


ask = AskWorkflow(timeout=None)
quiz = QuizWorkflow(timeout=None)
approval = ApprovalWorkflow(timeout=None)
