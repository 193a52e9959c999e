"""What a workflow sees of a wait token: the events and exceptions that end a wait.

This module imports only ``workflows.events`` (which every workflow already imports)
so that a workflow can import it cheaply, locally and from the Lambda bundle.

- A ``ctx.wait_for_event`` wait that is failed (``POST …/failure``) or times out
  raises :class:`WaitFailedError` / :class:`WaitTimedOutError` inside the step (the
  latter is a ``TimeoutError``, what ``wait_for_event`` raises for its own timeout).
- A wait opened by returning an ``InputRequiredEvent`` ends with a
  :class:`WaitFailed` / :class:`WaitTimedOut` event that a step may accept. They are
  ``HumanResponseEvent`` subclasses: responses from outside the workflow, which
  the workflow validator lets a step accept without a producer.
- :class:`WaitTokenIssued` is published in the run's event stream when a wait
  opens; it carries the token.
"""

from __future__ import annotations

from workflows.events import Event, HumanResponseEvent

__all__ = [
    "WaitError",
    "WaitFailed",
    "WaitFailedError",
    "WaitTimedOut",
    "WaitTimedOutError",
    "WaitTokenIssued",
]

TIMEOUT = "Timeout"
"""``error`` of a wait whose ``timeout_seconds`` passed."""
HEARTBEAT_TIMEOUT = "HeartbeatTimeout"
"""``error`` of a wait that missed its heartbeat (``heartbeat_seconds``)."""


class WaitFailed(HumanResponseEvent):
    """A wait opened by an ``InputRequiredEvent`` was failed through its token."""

    waiter_id: str
    error: str
    cause: str = ""


class WaitTimedOut(HumanResponseEvent):
    """A wait opened by an ``InputRequiredEvent`` passed its deadline or missed a heartbeat."""

    waiter_id: str
    error: str = TIMEOUT
    cause: str = ""


class WaitTokenIssued(Event):
    """Published in the event stream when a wait opens: the token that ends it.

    A plain event (not an ``InputRequiredEvent`` nor a ``StopEvent``): clients that
    do not know it pass it by.
    """

    token: str
    handler_id: str
    waiter_id: str
    expected_events: list[str]
    expires_at: str | None = None
    heartbeat_expires_at: str | None = None


class WaitError(Exception):
    """A wait ended without its event: ``error`` and ``cause`` say why.

    ``str()`` names the wait, the error and the cause. Rebuilt from a run's journal
    (the workflow library keeps an exception's type and message only), the
    message is kept and the attributes are not.
    """

    _verb = "ended"

    def __init__(self, waiter_id: str, error: str = "", cause: str = "") -> None:
        self.waiter_id = waiter_id
        self.error = error
        self.cause = cause
        if error:
            detail = f"{error}: {cause}" if cause else error
            super().__init__(f"wait {waiter_id!r} {self._verb}: {detail}")
        else:  # rebuilt from its message alone
            super().__init__(waiter_id)


class WaitFailedError(WaitError):
    """Raised in a ``ctx.wait_for_event`` step whose wait was failed through its token."""

    _verb = "failed"


class WaitTimedOutError(WaitError, TimeoutError):
    """Raised in a ``ctx.wait_for_event`` step whose wait timed out (or missed a heartbeat)."""

    _verb = "timed out"
