"""A trivial Lambda handler for harness tests: echoes, sleeps, raises, calls back.

``{"sleep": s}`` sleeps first, ``{"raise": msg}`` raises ``ValueError(msg)``,
``{"post": url}`` POSTs the event to ``url`` (an async-invoke endpoint) first.
The answer tells which process served it and the remaining time.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from typing import Any

__all__ = ["handler"]

_invocations = 0


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Echo ``event`` with the process id, the invocation count and the remaining time."""
    global _invocations
    _invocations += 1
    remaining = context.get_remaining_time_in_millis()
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    if event.get("raise"):
        raise ValueError(str(event["raise"]))
    if event.get("post"):
        request = urllib.request.Request(
            str(event["post"]),
            data=json.dumps(event.get("payload", {})).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            event = {**event, "post_status": response.status}
    return {
        "event": event,
        "pid": os.getpid(),
        "invocations": _invocations,
        "remaining_ms": remaining,
        "function_name": context.function_name,
        "env": {k: v for k, v in os.environ.items() if k.startswith("LLAMAWS_")},
    }
