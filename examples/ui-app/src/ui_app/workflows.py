"""A small human-in-the-loop workflow for the UI example.

``greet`` publishes progress events, asks a question (a ``QuestionEvent``, an
``InputRequiredEvent``)
and finishes with the answer once a ``HumanResponseEvent`` is posted.
"""

from workflows import Context, Workflow, step
from workflows.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)


class ProgressEvent(Event):
    """A line of progress shown by the UI."""

    message: str


class QuestionEvent(InputRequiredEvent):
    """Published when the run waits for an answer: the question to show."""

    question: str


class GreetWorkflow(Workflow):
    """Asks for a favourite ``topic`` (default: colour) and answers with it."""

    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> QuestionEvent:
        topic = ev.get("topic", "colour")
        ctx.write_event_to_stream(ProgressEvent(message=f"Preparing a question about {topic}"))
        return QuestionEvent(question=f"What is your favourite {topic}?")

    @step
    async def answer(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent:
        ctx.write_event_to_stream(ProgressEvent(message="Thanks for answering"))
        return StopEvent(result=f"Your favourite is {ev.response}.")


greet = GreetWorkflow(timeout=None)
