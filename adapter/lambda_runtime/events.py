"""llamaws's own invocation payloads, recognised before Mangum sees an event.

Each is ``{"llamaws": {"kind": ..., ...}}``: ``continue`` drives one run (sent by
the function to itself), ``sweep`` resumes stale runs (a schedule sends it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ContinueRun", "InternalEvent", "Sweep", "parse_internal_event"]

KEY = "llamaws"


@dataclass(frozen=True)
class ContinueRun:
    """Drive the run of ``handler_id`` (it has work or inbox entries)."""

    handler_id: str
    kind: Literal["continue"] = "continue"

    def payload(self) -> dict[str, Any]:
        return {KEY: {"kind": self.kind, "handler_id": self.handler_id}}


@dataclass(frozen=True)
class Sweep:
    """Find runs nobody drives (crashed or timed-out containers) and continue them.

    Only runs whose due mark is due are read; ``full`` reads every running handler."""

    full: bool = False
    kind: Literal["sweep"] = "sweep"

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind}
        if self.full:
            body["full"] = True
        return {KEY: body}


InternalEvent = ContinueRun | Sweep


def parse_internal_event(event: Mapping[str, Any]) -> InternalEvent | None:
    """The internal event in ``event``, ``None`` for anything else (HTTP events).

    Raises ``ValueError`` for a ``llamaws`` payload that is malformed.
    """
    body = event.get(KEY)
    if body is None:
        return None
    if not isinstance(body, Mapping):
        raise ValueError(f"'{KEY}' must be an object")
    kind = body.get("kind")
    if kind == "continue":
        handler_id = body.get("handler_id")
        if not isinstance(handler_id, str) or not handler_id:
            raise ValueError("a continue event needs a 'handler_id' string")
        return ContinueRun(handler_id)
    if kind == "sweep":
        full = body.get("full", False)
        if not isinstance(full, bool):
            raise ValueError("a sweep event's 'full' must be true or false")
        return Sweep(full=full)
    raise ValueError(f"unknown llamaws event kind {kind!r}: expected 'continue' or 'sweep'")
