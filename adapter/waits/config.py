"""Deadlines of a wait: from the waiting event, else the deployment's ``[tool.llamaws]``.

``[tool.llamaws]`` (of the deployment's TOML config file when it has that table, else
of the app's ``pyproject.toml``, as for every llamaws setting)::

    [tool.llamaws]
    wait_timeout_seconds = 86400     # a wait ends (WaitTimedOut) a day after it opened
    wait_heartbeat_seconds = 3600    # ... or an hour after the last heartbeat

Both optional (none: a wait never times out). A waiter event (``wait_for_event``'s
``waiter_event``) or an ``InputRequiredEvent`` with a ``timeout_seconds`` /
``heartbeat_seconds`` attribute sets its own.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from ..config import Deployment, read_settings_table
from ..errors import ConfigError

__all__ = ["WaitDefaults", "deadline_seconds", "event_attribute", "wait_defaults"]

logger = logging.getLogger(__name__)

_KEYS = {"timeout_seconds": "wait_timeout_seconds", "heartbeat_seconds": "wait_heartbeat_seconds"}


@dataclass(frozen=True)
class WaitDefaults:
    """The deployment's deadlines for waits whose event sets none (``None``: no deadline)."""

    timeout_seconds: float | None = None
    heartbeat_seconds: float | None = None


def wait_defaults(deployment: Deployment) -> WaitDefaults:
    """Read ``[tool.llamaws]`` ``wait_timeout_seconds`` / ``wait_heartbeat_seconds``."""
    section, pyproject = read_settings_table(deployment)
    values: dict[str, float | None] = {}
    for field, key in _KEYS.items():
        raw = section.get(key)
        if raw is None:
            values[field] = None
            continue
        seconds = _positive(raw)
        if seconds is None:
            raise ConfigError(
                f"{pyproject}: [tool.llamaws] {key} must be a positive number of seconds, "
                f"not {raw!r}"
            )
        values[field] = seconds
    return WaitDefaults(**values)


def deadline_seconds(event: Any, name: str, default: float | None) -> float | None:
    """``event``'s ``name`` attribute (``timeout_seconds`` / ``heartbeat_seconds``) if it
    is a positive number, else ``default``."""
    raw = event_attribute(event, name)
    if raw is None:
        return default
    seconds = _positive(raw)
    if seconds is None:
        logger.warning(
            "%s.%s = %r is not a positive number of seconds: using %s",
            type(event).__name__,
            name,
            raw,
            default,
        )
        return default
    return seconds


def event_attribute(event: Any, name: str) -> Any:
    """``event``'s ``name``: a declared field or free-form data (``None``: absent)."""
    if event is None:
        return None
    try:
        return getattr(event, name)  # a declared field
    except AttributeError:
        pass
    getter = getattr(event, "get", None)  # workflows' Event: free-form data
    if callable(getter):
        try:
            return getter(name)
        except Exception:
            return None
    return None


def _positive(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    value = float(raw)
    return value if value > 0 and math.isfinite(value) else None
