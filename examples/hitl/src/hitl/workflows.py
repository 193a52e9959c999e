"""Two ways a run waits for a person.

- ``ask``: a step returns a ``PromptEvent`` (an ``InputRequiredEvent``); another step accepts the
  ``HumanResponseEvent`` posted to ``/events/<handler_id>``.
- ``quiz``: a step waits with ``ctx.wait_for_event`` for a typed ``AnswerEvent``
  (no ``additional_events`` needed: llamaws registers waited-for types itself).
"""

from workflows import Context, Workflow, step
from workflows.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)


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


ask = AskWorkflow(timeout=None)
quiz = QuizWorkflow(timeout=None)
