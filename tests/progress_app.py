"""An app for tests and benchmarks of event streams: ``ticks`` publishes a progress event
every ``interval`` seconds, each stamped with its publication time; ``asks`` publishes one,
waits ``delay`` seconds, then asks a question (an ``InputRequiredEvent``, stamped too) and
finishes with the answer; ``big`` finishes with a result of ``size`` characters."""

from __future__ import annotations

import textwrap
from pathlib import Path

__all__ = ["PROGRESS_APP", "write_progress_app"]

PROGRESS_APP = """
import asyncio
import time

from workflows import Context, Workflow, step
from workflows.events import (
    Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent,
)


class Progress(Event):
    index: int
    published_at: float


class Question(InputRequiredEvent):
    prompt: str
    published_at: float


class Ticks(Workflow):
    @step
    async def tick(self, ctx: Context, ev: StartEvent) -> StopEvent:
        count = int(ev.get("count", 10))
        interval = float(ev.get("interval", 0.5))
        for index in range(count):
            await asyncio.sleep(interval)
            ctx.write_event_to_stream(Progress(index=index, published_at=time.time()))
        return StopEvent(result=count)


class Asks(Workflow):
    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> Question:
        ctx.write_event_to_stream(Progress(index=0, published_at=time.time()))
        await asyncio.sleep(float(ev.get("delay", 1.0)))
        return Question(prompt="Colour?", published_at=time.time())

    @step
    async def answer(self, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=f"You said: {ev.response}")


class Big(Workflow):
    @step
    async def grow(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result="x" * int(ev.get("size", 1000)))


ticks = Ticks(timeout=None)
asks = Asks(timeout=None)
big = Big(timeout=None)
"""


def write_progress_app(parent: Path) -> Path:
    """The app ``progress`` (workflows ``ticks``, ``asks``, ``big``) in ``parent/progress``."""
    app = parent / "progress"
    (app / "src").mkdir(parents=True, exist_ok=True)
    (app / "src" / "progress_app.py").write_text(textwrap.dedent(PROGRESS_APP))
    (app / "pyproject.toml").write_text(
        '[project]\nname = "progress"\nversion = "0.1.0"\n\n'
        '[tool.llamadeploy]\nname = "progress"\nworkflows = { ticks = "progress_app:ticks", '
        'asks = "progress_app:asks", big = "progress_app:big" }\n'
    )
    return app
