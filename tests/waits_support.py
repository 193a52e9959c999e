"""A test app whose runs wait in every way wait tokens know, and helpers to drive it.

``gate`` (``InputRequiredEvent``, handles ``WaitFailed`` / ``WaitTimedOut``), ``strict``
(``InputRequiredEvent``, handles neither), ``review`` (``ctx.wait_for_event``, catches
``WaitFailedError`` / ``WaitTimedOutError``) and ``quiz`` (``ctx.wait_for_event``,
catches nothing). Deadlines come from the start event (``timeout_seconds``,
``heartbeat_seconds``), carried by the event the run waits with.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

GATE_APP = """
from llamaws.adapter.waits import WaitFailed, WaitFailedError, WaitTimedOut, WaitTimedOutError
from workflows import Context, Workflow, step
from workflows.events import Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent


class Ask(InputRequiredEvent):
    prompt: str
    timeout_seconds: float | None = None
    heartbeat_seconds: float | None = None


class Gate(Workflow):
    @step
    async def ask(self, ev: StartEvent) -> Ask:
        return Ask(
            prompt=ev.get("prompt", "open?"),
            timeout_seconds=ev.get("timeout_seconds"),
            heartbeat_seconds=ev.get("heartbeat_seconds"),
        )

    @step
    async def answer(self, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=f"answer: {ev.response}")

    @step
    async def failed(self, ev: WaitFailed) -> StopEvent:
        return StopEvent(result=f"failed: {ev.error}: {ev.cause}")

    @step
    async def timed_out(self, ev: WaitTimedOut) -> StopEvent:
        return StopEvent(result=f"timed out: {ev.error}")


class Strict(Workflow):
    @step
    async def ask(self, ev: StartEvent) -> Ask:
        return Ask(prompt="strict?", timeout_seconds=ev.get("timeout_seconds"))

    @step
    async def answer(self, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=f"answer: {ev.response}")


class ReviewRequested(Event):
    timeout_seconds: float | None = None
    heartbeat_seconds: float | None = None


class Verdict(Event):
    verdict: str


class Review(Workflow):
    @step
    async def review(self, ctx: Context, ev: StartEvent) -> StopEvent:
        try:
            got = await ctx.wait_for_event(
                Verdict,
                waiter_event=ReviewRequested(
                    timeout_seconds=ev.get("timeout_seconds"),
                    heartbeat_seconds=ev.get("heartbeat_seconds"),
                ),
                waiter_id="review",
                timeout=None,
            )
        except WaitFailedError as exc:
            return StopEvent(result=f"failed: {exc.error}: {exc.cause}")
        except WaitTimedOutError as exc:
            return StopEvent(result=f"timed out: {exc.error}")
        return StopEvent(result=f"verdict: {got.verdict}")


class Quiz(Workflow):
    @step
    async def quiz(self, ctx: Context, ev: StartEvent) -> StopEvent:
        got = await ctx.wait_for_event(
            Verdict, waiter_event=ReviewRequested(), waiter_id="quiz", timeout=None
        )
        return StopEvent(result=f"verdict: {got.verdict}")


gate = Gate(timeout=None)
strict = Strict(timeout=None)
review = Review(timeout=None)
quiz = Quiz(timeout=None)
"""

GATE_PYPROJECT = """
[project]
name = "gate"
version = "0.1.0"
requires-python = ">=3.11"

[tool.llamadeploy]
name = "gate"

[tool.llamadeploy.workflows]
gate = "gate_app:gate"
strict = "gate_app:strict"
review = "gate_app:review"
quiz = "gate_app:quiz"
"""

BASE = "/deployments/gate"
ANSWER = {"event": {"type": "HumanResponseEvent", "value": {"response": "yes"}}}
VERDICT = {"event": {"type": "Verdict", "value": {"verdict": "ok"}}}
ANSWER_OF = {"gate": ANSWER, "strict": ANSWER, "review": VERDICT, "quiz": VERDICT}


def write_gate_app(root: Path) -> Path:
    """Write the app under ``root/gate``; returns its directory."""
    app = root / "gate"
    (app / "src").mkdir(parents=True, exist_ok=True)
    (app / "src" / "gate_app.py").write_text(textwrap.dedent(GATE_APP))
    (app / "pyproject.toml").write_text(textwrap.dedent(GATE_PYPROJECT))
    return app


def result_of(handler: dict[str, Any]) -> Any:
    return (handler.get("result") or {}).get("value", {}).get("result")


def seconds_until(iso: str) -> float:
    """Seconds from now until the ISO 8601 instant ``iso`` (negative once past)."""
    from datetime import UTC, datetime

    return (datetime.fromisoformat(iso) - datetime.now(UTC)).total_seconds()


def until_past(iso: str, *, margin: float = 0.05) -> None:
    """Poll until the wall clock is past ``iso`` (a deadline the API reported)."""
    until_within(iso, -margin)


def until_within(iso: str, seconds: float) -> None:
    """Poll until ``iso`` is less than ``seconds`` away."""
    from .support import wait_until

    wait_until(lambda: seconds_until(iso) < seconds, timeout=30, what=f"{iso} - {seconds}s")
