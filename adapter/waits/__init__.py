"""Wait tokens: Step-Functions-style task tokens for runs that wait (``docs/waits.md``).

When a run starts to wait for an external event (a step returned an
``InputRequiredEvent``, or awaits ``ctx.wait_for_event``), llamaws issues a token:
an unguessable, single-use capability that completes, fails or keeps alive exactly
that wait, from anywhere (an email link, a Slack button, another service), days
later. This package is importable from a workflow (locally and in the Lambda
bundle) for the events and exceptions that end a wait; importing it loads only
``workflows.events``.

- :mod:`.events`: :class:`WaitFailed`, :class:`WaitTimedOut` (events a step may
  accept), :class:`WaitFailedError`, :class:`WaitTimedOutError` (raised by
  ``ctx.wait_for_event``), :class:`WaitTokenIssued` (the announcement);
- :mod:`.tokens`: the token format, its record, the API's errors;
- :mod:`.stores`: SQLite and in-memory token stores (DynamoDB:
  ``adapter.store.tokens``);
- :mod:`.config`: deadlines from the waiting event or ``[tool.llamaws]``;
- :mod:`.service`: :class:`~.service.WaitTokens`, issue / complete / fail /
  heartbeat / expire;
- :mod:`.runtime`: the runtime decorator and the workflow-side hooks;
- :mod:`.delivery`: how failures and timeouts reach the run;
- :mod:`.routes`: the HTTP API; :mod:`.setup`: wiring into the app.
"""

from .events import (
    WaitError,
    WaitFailed,
    WaitFailedError,
    WaitTimedOut,
    WaitTimedOutError,
    WaitTokenIssued,
)

__all__ = [
    "WaitError",
    "WaitFailed",
    "WaitFailedError",
    "WaitTimedOut",
    "WaitTimedOutError",
    "WaitTokenIssued",
]
