"""``llamaws logs``: the function's CloudWatch Logs, filtered to one run on request.

In Lambda the function writes JSON lines (the stack sets its log format to JSON) and
every record logged for a run carries ``handler_id`` and ``run_id``
(``adapter/log_context.py``). ``--handler ID`` asks CloudWatch for the lines that
contain the id (a quoted-term filter pattern), then keeps the JSON lines whose
``handler_id`` is that id (and other lines that name it). ``--follow`` polls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from llamaws.adapter.errors import LlamawsError

__all__ = ["LogLine", "fetch", "follow", "log_group", "matches", "render"]

FOLLOW_POLL_SECONDS = 2.0
LATE_MS = 15_000
"""How far back ``follow`` looks again each time for events indexed late."""


@dataclass(frozen=True)
class LogLine:
    """One log event."""

    timestamp_ms: int
    stream: str
    message: str
    event_id: str

    @property
    def fields(self) -> dict[str, Any] | None:
        """The JSON object of a structured line (None for plain text)."""
        text = self.message.strip()
        if not text.startswith("{"):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def log_group(outputs: dict[str, str]) -> str:
    """The function's log group, from the stack's outputs."""
    if outputs.get("LogGroupName"):
        return outputs["LogGroupName"]
    if outputs.get("FunctionName"):
        return f"/aws/lambda/{outputs['FunctionName']}"
    raise LlamawsError(
        "the stack has no LogGroupName or FunctionName output",
        hint="Deploy again with this llamaws version.",
    )


def matches(line: LogLine, handler_id: str | None) -> bool:
    """Whether ``line`` belongs to ``handler_id``'s run (every line without a filter)."""
    if handler_id is None:
        return True
    fields = line.fields
    if fields is not None and "handler_id" in fields:
        return fields.get("handler_id") == handler_id
    return handler_id in line.message


def fetch(
    logs: Any,
    group: str,
    start_ms: int,
    *,
    handler_id: str | None = None,
    end_ms: int | None = None,
) -> Iterator[LogLine]:
    """The lines of ``group`` from ``start_ms`` on, oldest first."""
    from botocore.exceptions import ClientError

    arguments: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
    if end_ms is not None:
        arguments["endTime"] = end_ms
    if handler_id:
        arguments["filterPattern"] = json.dumps(handler_id)  # a quoted term: exact text
    try:
        for page in logs.get_paginator("filter_log_events").paginate(**arguments):
            for event in page.get("events", []):
                line = LogLine(
                    timestamp_ms=int(event["timestamp"]),
                    stream=str(event.get("logStreamName", "")),
                    message=str(event.get("message", "")).rstrip("\n"),
                    event_id=str(event.get("eventId", "")),
                )
                if matches(line, handler_id):
                    yield line
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise LlamawsError(
                f"log group {group} does not exist (yet)",
                hint="The function creates it with its first log line: call the API first.",
            ) from None
        raise


def follow(
    logs: Any,
    group: str,
    start_ms: int,
    *,
    handler_id: str | None = None,
    poll_seconds: float = FOLLOW_POLL_SECONDS,
    keep_going: Callable[[], bool] = lambda: True,
) -> Iterator[LogLine]:
    """Lines as they arrive: every ``poll_seconds``, the last :data:`LATE_MS` again
    (CloudWatch may index an event after a later one), never a line twice."""
    newest = start_ms
    seen: dict[str, int] = {}
    while True:
        for line in fetch(logs, group, max(start_ms, newest - LATE_MS), handler_id=handler_id):
            if line.event_id in seen:
                continue
            seen[line.event_id] = line.timestamp_ms
            newest = max(newest, line.timestamp_ms)
            yield line
        seen = {k: ts for k, ts in seen.items() if ts >= newest - LATE_MS}
        if not keep_going():
            return
        time.sleep(poll_seconds)


def render(line: LogLine, *, raw: bool = False) -> str:
    """A line for a terminal: time, level, the run's ids and the message."""
    if raw:
        return line.message
    when = datetime.fromtimestamp(line.timestamp_ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
    fields = line.fields
    if fields is None or "message" not in fields:
        return f"{when} {line.message}"
    ids = " ".join(
        f"{label}={fields[key]}"
        for key, label in (("handler_id", "handler"), ("run_id", "run"))
        if fields.get(key)
    )
    message = fields["message"]
    text = message if isinstance(message, str) else json.dumps(message)
    head = f"{when} {fields.get('level', '')!s:<7}"
    where = f"{ids} " if ids else ""
    logger = f"{fields['logger']}: " if fields.get("logger") else ""
    trace = "".join(fields.get("stackTrace") or [])
    error = f"\n{trace}{fields.get('errorType')}: {fields.get('errorMessage')}" if trace else ""
    return f"{head} {where}{logger}{text}{error}"
