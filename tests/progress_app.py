"""An app whose run publishes a progress event every ``interval`` seconds, each stamped
with its publication time: for tests and benchmarks of event streams."""

from __future__ import annotations

import textwrap
from pathlib import Path

__all__ = ["PROGRESS_APP", "write_progress_app"]

PROGRESS_APP = """
import asyncio
import time

from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent


class Progress(Event):
    index: int
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


ticks = Ticks(timeout=None)
"""


def write_progress_app(parent: Path) -> Path:
    """The app ``progress`` (workflow ``ticks``) in ``parent/progress``."""
    app = parent / "progress"
    (app / "src").mkdir(parents=True, exist_ok=True)
    (app / "src" / "progress_app.py").write_text(textwrap.dedent(PROGRESS_APP))
    (app / "pyproject.toml").write_text(
        '[project]\nname = "progress"\nversion = "0.1.0"\n\n'
        '[tool.llamadeploy]\nname = "progress"\nworkflows = { ticks = "progress_app:ticks" }\n'
    )
    return app
