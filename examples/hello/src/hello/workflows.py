"""A greeting workflow: one step, no UI."""

from workflows import Workflow, step
from workflows.events import StartEvent, StopEvent


class GreetWorkflow(Workflow):
    """Answers ``{"start_event": {"name": "Ada"}}`` with ``Hello, Ada!``."""

    @step
    async def greet(self, ev: StartEvent) -> StopEvent:
        name = ev.get("name", "World")
        return StopEvent(result=f"Hello, {name}!")


greet = GreetWorkflow(timeout=None)
